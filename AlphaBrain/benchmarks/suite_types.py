"""The suite types: `SuiteTask` and `Suite`, the simulated task sets a continual-learning run is evaluated on.

A suite is an ordered list of tasks (name = slugify(instruction), the same names a
training stream gives its tasks), a way to make each task's environment, evaluation
seeds that never coincide with the seeds of the training demos, and where its demo
dataset lives.

    suite = get_suite("metaworld_cl5")
    env = suite.make_env(suite.tasks[0].name, image_size=(64, 64))
    obs = env.reset(suite.eval_seed(task_index=0, trial=0))

An environment made by a suite follows one small protocol (what the evaluator uses):
`reset(seed) -> obs`, `step(action) -> (obs, success, done)`, `close()`, attributes
`max_steps`, `instruction`; `obs = {"images": [uint8 HxWx3, ...], "state": float32[D], ...}`.

The per-benchmark suite modules build their suites from these types; registry.py maps
suite names to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from AlphaBrain.utils.errors import UserError, unknown_name
from AlphaBrain.utils.text import slugify  # noqa: F401  (the task-name rule, re-exported for suites)


@dataclass(frozen=True)
class SuiteTask:
    name: str          # slugify(instruction): the task's name in streams, checkpoints and matrices
    env_name: str      # the simulator's name of the task (Meta-World env, LIBERO task, ...)
    instruction: str   # the language instruction given to the policy
    max_steps: int     # episode limit during evaluation


class Suite:
    """An ordered set of simulated tasks (see the module docstring)."""

    def __init__(
        self,
        name: str,
        tasks: list[SuiteTask],
        env_factory: Callable[[SuiteTask, tuple[int, int]], Any],
        *,
        eval_seed_fn: Callable[[int, int], int],
        dataset_dir_fn: Optional[Callable[[], Path]] = None,
        description: str = "",
    ) -> None:
        names = [t.name for t in tasks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"suite {name!r}: task names must be unique, repeated: {dupes}")
        self.name = name
        self.tasks = list(tasks)
        self.description = description
        self._env_factory = env_factory
        self._eval_seed_fn = eval_seed_fn
        self._dataset_dir_fn = dataset_dir_fn

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def task_index(self, task_name: str) -> int:
        for i, t in enumerate(self.tasks):
            if t.name == task_name:
                return i
        raise unknown_name(f"task of suite {self.name}", task_name, self.task_names)

    def task(self, task_name: str) -> SuiteTask:
        return self.tasks[self.task_index(task_name)]

    def make_env(self, task_name: str, image_size: tuple[int, int] = (64, 64)):
        """A fresh environment of the task named `task_name` (a slug); the caller closes it."""
        size = (int(image_size), int(image_size)) if isinstance(image_size, int) else tuple(int(s) for s in image_size)
        if len(size) != 2:
            raise UserError(f"image_size must be (height, width), got {image_size!r}")
        return self._env_factory(self.task(task_name), size)

    def eval_seed(self, task_index: int, trial: int) -> int:
        """The layout seed of evaluation trial `trial` of task `task_index` (disjoint from training seeds)."""
        if not 0 <= int(task_index) < len(self.tasks):
            raise UserError(f"suite {self.name} has tasks 0..{len(self.tasks) - 1}, got task_index={task_index}")
        if int(trial) < 0:
            raise UserError(f"trial must be >= 0, got {trial}")
        return self._eval_seed_fn(int(task_index), int(trial))

    def dataset_dir(self) -> Path:
        """Where this suite's training demos are (or would be generated)."""
        if self._dataset_dir_fn is None:
            raise UserError(f"suite {self.name} has no dataset of its own; give the dataset path explicitly")
        return Path(self._dataset_dir_fn())

    def __repr__(self) -> str:
        return f"Suite({self.name!r}, tasks={self.task_names})"

"""The LIBERO evaluation suites (registered by name in registry.py).

Trial k of a task starts from the task's init state k (`eval_seed(task_index, k) = k`;
LiberoEnv.reset uses `seed % n_init_states`), the fixed states every LIBERO evaluation uses.
The four suites' training data are LIBERO's demos, not these states' episodes, so the
seeds cannot collide with training; libero_goal_mini's generated demos start from other
states (its generator's business; the same for libero_goal_scripted).
"""

from __future__ import annotations

from pathlib import Path

from AlphaBrain.benchmarks.libero.tasks import (
    GENERATED_SUITES,
    SUITE_DESCRIPTIONS,
    default_dataset_dir,
    suite_names,
    suite_task_specs,
)
from AlphaBrain.benchmarks.suite_types import Suite, SuiteTask, slugify
from AlphaBrain.utils.errors import unknown_name


def _eval_seed(task_index: int, trial: int) -> int:
    return int(trial)


def libero_suite(name: str) -> Suite:
    """The suite `name` (libero_spatial, libero_object, libero_goal, libero_10, libero_long, libero_goal_mini,
    libero_goal_scripted)."""
    if name not in suite_names():
        raise unknown_name("LIBERO suite", name, suite_names())
    specs = {}
    tasks = []
    for spec in suite_task_specs(name):
        task = SuiteTask(slugify(spec.instruction), spec.bddl_name, spec.instruction, spec.max_steps)
        specs[task.name] = spec
        tasks.append(task)

    def make_env(task: SuiteTask, image_size: tuple[int, int]):
        from AlphaBrain.benchmarks.libero.env import LiberoEnv

        return LiberoEnv(specs[task.name], image_size=image_size, max_steps=task.max_steps,
                         instruction=task.instruction)

    dataset_dir = (lambda: default_dataset_dir(name)) if name in GENERATED_SUITES else None
    return Suite(name, tasks, make_env, eval_seed_fn=_eval_seed, dataset_dir_fn=dataset_dir,
                 description=SUITE_DESCRIPTIONS.get(name, ""))


def dataset_dir(name: str) -> Path:
    return default_dataset_dir(name)

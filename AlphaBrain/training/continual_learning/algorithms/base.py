"""The one interface every continual-learning algorithm implements.

The trainer talks to an algorithm only through the six hooks below, called at
fixed points of the training loop (docs/continual_learning/algorithms.md has the
diagram). Every hook has a no-op default, so a method overrides only what it
needs. Hooks are real methods, never looked up with `hasattr`: a subclass that
defines a near-miss of a hook name (`on_task_ends`, `modify_batches`) fails at
class definition instead of silently never running.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

import torch

from AlphaBrain.utils.errors import ConfigError, did_you_mean

HOOKS = (
    "observe",
    "modify_batch",
    "compute_penalty",
    "after_backward",
    "on_task_start",
    "on_task_end",
)


@dataclass
class CLContext:
    """Handles an algorithm may need at a task boundary."""

    task_id: int
    model: torch.nn.Module                    # the unwrapped policy
    task_dataset: Any                         # TaskFilteredDataset of this task (whole task, not a rank shard)
    task_dataloader: Any                      # the (possibly sharded) DataLoader of this task
    accelerator: Any                          # accelerate.Accelerator
    num_tasks: int = 0
    extras: dict = field(default_factory=dict)


class CLAlgorithm:
    """Base class: no-op hooks plus JSON-serializable state.

    Subclasses set `name` and declare their YAML hyperparameters in
    `HYPERPARAMETERS` (key -> default); `from_config` rejects unknown keys with
    the closest valid one.
    """

    name: ClassVar[str] = "base"
    HYPERPARAMETERS: ClassVar[Mapping[str, Any]] = {}
    # Public methods a subclass may define that are not hooks (helpers of the algorithm).
    _NOT_HOOKS: ClassVar[frozenset] = frozenset(
        {"state_dict", "load_state_dict", "tensor_state_dict", "load_tensor_state_dict", "from_config", "bind_runtime"}
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for attr, value in vars(cls).items():
            if attr.startswith("_") or not callable(value) or attr in HOOKS or attr in cls._NOT_HOOKS:
                continue
            near = difflib.get_close_matches(attr, HOOKS, n=1, cutoff=0.75)
            if near or (attr.startswith(("on_", "after_", "before_")) and attr not in HOOKS):
                guess = f' Did you mean "{near[0]}"?' if near else ""
                raise TypeError(
                    f'{cls.__name__}.{attr} looks like a CL hook but is not one, so the trainer would never call it.'
                    f"{guess} Hooks: {', '.join(HOOKS)}."
                )

    seed: int = 0
    rank: int = 0
    world_size: int = 1

    def bind_runtime(self, *, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        """Called once by the trainer before training: the run's seed and this process's rank."""
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)

    # ------------------------------------------------------------------ hooks
    def observe(self, batch: list[dict], task_id: int) -> None:
        """Every step, before `modify_batch`, with the current-task batch."""

    def modify_batch(self, batch: list[dict], task_id: int) -> list[dict]:
        """Every step: return the batch the model trains on (replay methods mix in memory)."""
        return batch

    def compute_penalty(self, model: torch.nn.Module) -> torch.Tensor | None:
        """Every step, after the forward: an extra loss term (regularization methods) or None."""
        return None

    def after_backward(self, model: torch.nn.Module) -> None:
        """Every step, after `accelerator.backward` and before clipping / the optimizer step."""

    def on_task_start(self, ctx: CLContext) -> None:
        """Before the first step of a task (also for the first task after a resume)."""

    def on_task_end(self, ctx: CLContext) -> None:
        """After the last step of a task, before its checkpoint is written."""

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """JSON-serializable state, written to `<checkpoint>_cl_state.json`."""
        return {"name": self.name}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        saved = state.get("name", self.name)
        if saved != self.name:
            raise ConfigError(
                f'The checkpoint\'s CL state was written by algorithm "{saved}" but this run uses "{self.name}". '
                "Resume with the same continual_learning.algorithm settings, or start a new run_id."
            )

    def tensor_state_dict(self) -> dict[str, torch.Tensor]:
        """Tensor-valued state (e.g. Fisher information), saved as safetensors next to the checkpoint."""
        return {}

    def load_tensor_state_dict(self, tensors: Mapping[str, torch.Tensor]) -> None:
        """Restore what `tensor_state_dict` returned."""

    # ------------------------------------------------------------------ config
    @classmethod
    def from_config(cls, params: Mapping[str, Any]) -> "CLAlgorithm":
        params = dict(params)
        for key in params:
            if key not in cls.HYPERPARAMETERS:
                valid = sorted(cls.HYPERPARAMETERS)
                raise ConfigError(
                    f'Unknown hyperparameter "continual_learning.algorithm.{key}" for algorithm "{cls.name}".'
                    f"{did_you_mean(key, valid)} Valid keys: {', '.join(valid) or '(none)'}."
                )
        merged = {**cls.HYPERPARAMETERS, **params}
        return cls(**merged)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

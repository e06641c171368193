"""The one interface every continual-learning algorithm implements.

The trainer talks to an algorithm only through the hooks below, called at
fixed points of the training loop (docs/continual_learning/algorithms.md has the
diagram). Every hook has a no-op default, so a method overrides only what it
needs. Hooks are real methods, never looked up with `hasattr`: a subclass that
defines a near-miss of a hook name (`on_task_ends`, `modify_batches`) fails at
class definition instead of silently never running.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Optional

import torch

from AlphaBrain.training.continual_learning.algorithms.hparams import check_hyperparameters, defaults, with_defaults
from AlphaBrain.utils.errors import ConfigError

HOOKS = (
    "observe",
    "modify_batch",
    "compute_penalty",
    "after_backward",
    "after_optimizer_step",
    "on_task_start",
    "on_task_end",
)


@dataclass
class CLContext:
    """What an algorithm may need about the current task and the current step.

    The trainer builds one per task, sets it as `algorithm.ctx` before `on_task_start`, and
    updates the step fields before every micro-batch's `observe`, so `after_backward` knows
    where it stands without counting calls itself.
    """

    task_id: int
    model: torch.nn.Module                    # the unwrapped policy
    task_dataset: Any                         # TaskFilteredDataset of this task (whole task, not a rank shard)
    task_dataloader: Any                      # the (possibly sharded) DataLoader of this task
    accelerator: Any                          # accelerate.Accelerator
    num_tasks: int = 0
    steps: int = 0                            # optimizer steps this task trains for
    gradient_accumulation_steps: int = 1      # micro-batches per optimizer step
    step: int = 0                             # optimizer step within the task, 0-based
    micro_batch: int = 0                      # micro-batch within the step, 0-based
    global_step: int = 0                      # optimizer steps since the start of the run
    # Every task's dataset, in training order. Only an offline reference (Multitask's whole_stream) may read
    # tasks after `task_id`: a continual method that looks ahead is no longer continual.
    stream_tasks: tuple = ()

    @property
    def is_optimizer_step(self) -> bool:
        """True on the last micro-batch of a step: after its backward the gradient is whole and the optimizer steps."""
        return self.micro_batch == self.gradient_accumulation_steps - 1


class CLAlgorithm:
    """Base class: no-op hooks plus JSON-serializable state.

    Subclasses set `name` and declare their YAML hyperparameters in
    `HYPERPARAMETERS`: key -> `hparams.Param(default, check)`, or key -> default
    for a subclass that checks the value in its own constructor. `from_config`
    rejects unknown keys with the closest valid one; the base constructor fills
    in defaults, runs every check and keeps the result in `self.hparams`.

    `ctx` is the current task's `CLContext`: the trainer sets it before
    `on_task_start` and updates its step fields before every micro-batch, so a hook
    that is not passed the context (`observe`, `modify_batch`, `compute_penalty`,
    `after_backward`) reads `self.ctx.micro_batch`, `self.ctx.is_optimizer_step`,
    `self.ctx.step` or `self.ctx.accelerator` from it. Code that drives the hooks
    by hand sets it the same way.

    `needs_param_grad` is True for an algorithm whose `after_backward` reads (or
    rewrites) `param.grad` as the whole gradient of the step. The trainer refuses
    such an algorithm on a backend that does not keep it there (DeepSpeed ZeRO
    partitions gradients into its own buffers); the algorithm itself refuses
    accelerate's DeepSpeed / FSDP modes with `refuse_sharded_gradients`.
    """

    name: ClassVar[str] = "base"
    HYPERPARAMETERS: ClassVar[Mapping[str, Any]] = {}
    needs_param_grad: ClassVar[bool] = False
    # True for a method that trains LoRA adapters only (lora_per_task): the trainer refuses it without `lora.enabled`.
    requires_lora: ClassVar[bool] = False
    # True for a method that writes parameter values itself (weight_merge): a backend with its own master copy of
    # the weights (DeepSpeed, FSDP) would overwrite them at its next step, so the trainer refuses those.
    writes_weights: ClassVar[bool] = False
    ctx: Optional[CLContext] = None
    # Public methods a subclass may define that are not hooks (helpers of the algorithm).
    _NOT_HOOKS: ClassVar[frozenset] = frozenset(
        {"state_dict", "load_state_dict", "tensor_state_dict", "load_tensor_state_dict", "from_config", "bind_runtime",
         "defaults", "task_conditioning"}
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

    def __init__(self, **params: Any) -> None:
        self.hparams: dict[str, Any] = check_hyperparameters(self.name, self.HYPERPARAMETERS, params)

    def bind_runtime(self, *, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        """Called once by the trainer before training: the run's seed and this process's rank."""
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)

    # ------------------------------------------------------------------ hooks
    def observe(self, batch: list[dict], task_id: int) -> None:
        """Every micro-batch, before `modify_batch`, with the current-task batch."""

    def modify_batch(self, batch: list[dict], task_id: int) -> list[dict]:
        """Every micro-batch: return the batch the model trains on (replay methods mix in memory)."""
        return batch

    def compute_penalty(self, model: torch.nn.Module, batch: list[dict]) -> torch.Tensor | None:
        """Every micro-batch, after the forward on `batch` (as `modify_batch` returned it): an extra loss term or None."""
        return None

    def after_backward(self, model: torch.nn.Module) -> None:
        """Every micro-batch, after its backward; on the last one (`self.ctx.is_optimizer_step`) before clipping
        and the optimizer step, with the step's whole gradient accumulated."""

    def after_optimizer_step(self, model: torch.nn.Module) -> None:
        """Every step, right after the optimizer step (also one an fp16 loss scaler skipped), before any
        mid-task checkpoint: where a method that owns some weights (PackNet) puts them back exactly, since an
        optimizer may move a weight whose gradient is zero (decoupled weight decay, momentum)."""

    def on_task_start(self, ctx: CLContext) -> None:
        """Before the first step of a task (also for the first task after a resume); `self.ctx` is `ctx` already."""

    def on_task_end(self, ctx: CLContext) -> None:
        """After the last step of a task, before its checkpoint is written."""

    # ------------------------------------------------------------------ state
    def task_conditioning(self):
        """Per-task parameters evaluation must select by task (`model.task_conditioning.TaskConditioning`), or
        None for a method whose checkpoint is one task-agnostic model. A method that returns one also writes it
        into its state with `model.task_conditioning.conditioning_state`, so evaluation finds it."""
        return None

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
        """The algorithm built from its YAML block (without `name`): declared keys only, defaults filled in."""
        return cls(**with_defaults(cls.name, cls.HYPERPARAMETERS, params))

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """key -> default of every declared hyperparameter."""
        return defaults(cls.HYPERPARAMETERS)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

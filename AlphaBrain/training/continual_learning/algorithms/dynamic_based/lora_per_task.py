"""One LoRA adapter per task on a shared frozen backbone (TAIL: Liu et al., "TAIL: Task-specific Adapters
for Imitation Learning with Large Pretrained Models", ICLR 2024, arXiv:2310.05905).

Idea: the backbone never trains (LoRA already freezes it); every task gets its own adapter and,
with `per_task_head: true` (the default), its own action head. A task's parameters are copied
out when the task ends and never touched again, so nothing forgets by construction. The price
is that the policy needs the task's identity at test time: evaluation selects the adapter of
the cell's task, the policy server that of the request's task.

The per-task set is every parameter whose name contains "lora_" (the adapter matrices) plus,
with `per_task_head`, every other trainable parameter (everything outside the LoRA target stays
trainable in a LoRA run: action head, Q-Former, ...). With `per_task_head: false` those are
shared and trained by every task, so they can forget.

Task start (k > 0): with `init: fresh` the per-task set is put back to its values at the start
of task 0 (for LoRA, B = 0 there, so a fresh adapter starts as the identity); with
`init: previous` task k starts from task k-1's values (warm start). Task end: the set is copied
(on CPU, in the parameters' own dtype) as task k's.

Checkpoint: `task_conditioning()` is a `ParameterSets` with every finished task's set; it goes
into the JSON state (descriptor) and the tensor state ("conditioning.task<k>.<param>"), next to
the task-0 start values ("initial.<param>") a run resumed at a later task resets to.

Multi-process: every rank holds the same sets (the parameters are identical across ranks after
every step) and resets the same way, so nothing is communicated. The reset writes the parameters
in place, which an optimizer with its own master copy of the weights (DeepSpeed ZeRO, DeepSpeed's
bf16 optimizer) would undo at the next step: with `init: fresh` the method declares `writes_weights`,
and the trainer refuses it under DeepSpeed and FSDP before anything is written.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import torch

from AlphaBrain.model.task_conditioning import ParameterSets, conditioning_state
from AlphaBrain.training.continual_learning.algorithms.base import CLAlgorithm, CLContext
from AlphaBrain.training.continual_learning.algorithms.hparams import Param, check_bool, check_choice
from AlphaBrain.training.continual_learning.algorithms.registry import register_algorithm
from AlphaBrain.utils.errors import ConfigError, UserError

#: key prefix of the task-0 start values in the tensor state
INITIAL_PREFIX = "initial."
INIT_CHOICES = ("fresh", "previous")


def is_adapter_parameter(name: str) -> bool:
    """A LoRA matrix (peft names them `...lora_A.<adapter>.weight`, `lora_B`, `lora_embedding_*`)."""
    return "lora_" in name


def per_task_parameters(model: torch.nn.Module, per_task_head: bool) -> list[tuple[str, torch.nn.Parameter]]:
    """(name, parameter) of the per-task set, in module order."""
    return [(n, p) for n, p in model.named_parameters()
            if is_adapter_parameter(n) or (per_task_head and p.requires_grad)]


def copy_out(named: list[tuple[str, torch.nn.Parameter]]) -> dict[str, torch.Tensor]:
    """CPU copies in the parameters' own dtype: a later `select` must put back exactly what was trained."""
    return {n: p.detach().to("cpu", copy=True) for n, p in named}


@register_algorithm("lora_per_task")
class LoraPerTask(CLAlgorithm):
    name = "lora_per_task"
    requires_lora = True
    HYPERPARAMETERS = {
        "per_task_head": Param(True, check_bool),
        "init": Param("fresh", check_choice, choices=INIT_CHOICES),
    }

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.per_task_head: bool = self.hparams["per_task_head"]
        self.init: str = self.hparams["init"]
        self.initial: Optional[dict[str, torch.Tensor]] = None  # the per-task set at the start of task 0
        self.sets: dict[int, dict[str, torch.Tensor]] = {}       # task position -> its set, once finished
        self._tasks_in_state: list[int] = []                     # positions load_state_dict announced

    @property
    def writes_weights(self) -> bool:  # type: ignore[override]
        """`init: fresh` resets the adapters in place at each task start (refused where a master copy would undo it)."""
        return self.init == "fresh"

    # ------------------------------------------------------------------ hooks
    def on_task_start(self, ctx: CLContext) -> None:
        named = self._named(ctx.model)
        if self.initial is None:
            self.initial = copy_out(named)
        else:
            self._check_same_set(named)
        if self.init != "fresh":
            return
        if self.sets:  # a later task: a new adapter (and head) from the task-0 start values
            with torch.no_grad():
                for name, p in named:
                    p.copy_(self.initial[name].to(device=p.device, dtype=p.dtype))

    def on_task_end(self, ctx: CLContext) -> None:
        self.sets[int(ctx.task_id)] = copy_out(self._named(ctx.model))

    # ------------------------------------------------------------------ helpers
    def _named(self, model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
        named = per_task_parameters(model, self.per_task_head)
        if not any(is_adapter_parameter(n) for n, _ in named):
            raise ConfigError(
                f'Algorithm "{self.name}" trains one LoRA adapter per task, but {type(model).__name__} has no LoRA '
                "parameters. Set lora.enabled=true with a model that has a VLM backbone "
                "(e.g. configs/continual_learning/models/qwengr00t_tiny.yaml)."
            )
        return named

    def _check_same_set(self, named: list[tuple[str, torch.nn.Parameter]]) -> None:
        current = {n: tuple(p.shape) for n, p in named}
        saved = {n: tuple(t.shape) for n, t in self.initial.items()}
        if current != saved:
            diff = sorted(set(current) ^ set(saved)) or [n for n in current if current[n] != saved[n]]
            raise ConfigError(
                f"The per-task parameters of this model differ from the run's checkpoint ({len(diff)} differ, "
                f"e.g. {diff[:2]}): the lora block (rank, target_modules) or continual_learning.algorithm.per_task_head "
                "changed. Resume with the run's own settings (its config.yaml) or start a new run_id."
            )

    # ------------------------------------------------------------------ state
    def task_conditioning(self) -> Optional[ParameterSets]:
        return ParameterSets(self.sets) if self.sets else None

    def state_dict(self) -> dict:
        meta, _ = conditioning_state(self.task_conditioning())
        return {**super().state_dict(), "hparams": dict(self.hparams), "tasks": sorted(self.sets), **meta}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        saved = state.get("hparams", {})
        for key in ("per_task_head", "init"):
            if key in saved and saved[key] != self.hparams[key]:
                raise ConfigError(
                    f"The checkpoint was written with continual_learning.algorithm.{key}={saved[key]!r} but this run "
                    f"sets {self.hparams[key]!r}. Resume with {key}={saved[key]!r} or start a new run_id."
                )
        self._tasks_in_state = [int(t) for t in state.get("tasks", [])]

    def tensor_state_dict(self) -> dict[str, torch.Tensor]:
        out = {} if self.initial is None else {f"{INITIAL_PREFIX}{n}": t for n, t in self.initial.items()}
        out.update(conditioning_state(self.task_conditioning())[1])
        return out

    def load_tensor_state_dict(self, tensors: Mapping[str, torch.Tensor]) -> None:
        initial = {k[len(INITIAL_PREFIX):]: v for k, v in tensors.items() if k.startswith(INITIAL_PREFIX)}
        self.initial = initial or None
        sets = ParameterSets.from_parts({"positions": self._tasks_in_state}, tensors).sets
        incomplete = [k for k in self._tasks_in_state if not sets.get(k)]
        if incomplete or (self._tasks_in_state and self.initial is None):
            raise UserError(
                f"The checkpoint's _cl_state.safetensors lacks the adapters of task position(s) {incomplete} or the "
                f'"{INITIAL_PREFIX}*" start values that its _cl_state.json announces: resume from an intact '
                "checkpoint or start a new run_id."
            )
        self.sets = {k: dict(v) for k, v in sets.items()}

    def __repr__(self) -> str:
        return f"LoraPerTask(per_task_head={self.per_task_head}, init={self.init}, tasks={sorted(self.sets)})"

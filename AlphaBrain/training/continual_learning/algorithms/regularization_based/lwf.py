"""LwF: Learning without Forgetting (Li & Hoiem, ECCV 2016; TPAMI 2017, arXiv:1606.09282), for action prediction.

Idea: keep the policy's function on past tasks by distilling it from a frozen
copy of itself, on the *current* task's inputs (no stored data). At the end of
each task the policy is snapshotted as the teacher; on every step of later
tasks the loss gets

    lwf_alpha · MSE(action_outputs(student, batch), action_outputs(teacher, batch))

where `batch` is the batch the policy trains on (`compute_penalty` gets it; LwF
mixes in nothing, so it is the current task's). The original
uses a temperature-softened cross-entropy on class logits; action chunks are
regression outputs, so the distance is the MSE and there is no temperature.
The teacher's outputs are computed in eval mode without gradients, the
student's in the current (training) mode.

Stored: the teacher, a frozen deep copy of the policy in eval mode on the same
device. Parameters that were frozen when it was taken (a LoRA run's backbone)
are *shared* with the policy instead of copied: they never change, so the
teacher costs one extra copy of the trainable parameters (the whole model for
full fine-tuning). In `_cl_state.safetensors` the teacher's own tensors (its
copies of the trainable parameters, and its buffers) go under
`lwf.teacher.<state_dict key>`; on resume the teacher is rebuilt in
`on_task_start` (the first hook that sees the model) as a copy of the restored
policy with those tensors loaded.

Multi-process: every rank snapshots its own (identical) policy and distills on
its own shard of the batch; the penalty's gradients are all-reduced with the
rest of the loss, so parameters stay in sync.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

import torch

from AlphaBrain.training.continual_learning.algorithms.base import CLAlgorithm, CLContext
from AlphaBrain.training.continual_learning.algorithms.distillation import output_mse
from AlphaBrain.training.continual_learning.algorithms.hparams import Param, check_float
from AlphaBrain.training.continual_learning.algorithms.registry import register_algorithm
from AlphaBrain.utils.errors import UserError

_TEACHER_KEY = "lwf.teacher."


def frozen_snapshot(model: torch.nn.Module) -> torch.nn.Module:
    """A deep copy in eval mode without gradients that shares the model's frozen parameters (never copied)."""
    shared = {id(p): p for p in model.parameters() if not p.requires_grad}
    teacher = copy.deepcopy(model, memo=shared)
    teacher.eval()
    teacher.requires_grad_(False)
    return teacher


@register_algorithm("lwf")
class LwF(CLAlgorithm):
    name = "lwf"
    HYPERPARAMETERS = {
        "lwf_alpha": Param(1.0, check_float, strict=True, hint=" (the weight of the distillation term; 0 is plain "
                           "sequential fine-tuning: use algorithm.name=sequential for that)"),
    }

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.alpha = self.hparams["lwf_alpha"]
        self.teacher: torch.nn.Module | None = None
        self.teacher_task: int | None = None  # the task after which the teacher was taken
        self._own_keys: list[str] = []  # the teacher's state_dict keys not shared with the policy
        self._restore: dict[str, torch.Tensor] | None = None  # tensors waiting for the model (resume)

    # ------------------------------------------------------------------ hooks
    def on_task_start(self, ctx: CLContext) -> None:
        if self.teacher is None and self.teacher_task is not None:
            self._rebuild_teacher(ctx.model)

    def compute_penalty(self, model: torch.nn.Module, batch: list[dict]) -> torch.Tensor | None:
        if self.teacher is None and self.teacher_task is not None:
            self._rebuild_teacher(model)  # state loaded after on_task_start (a mid-task resume)
        if self.teacher is None:
            return None
        with torch.no_grad():
            target = self.teacher.action_outputs(batch)
        return self.alpha * output_mse(model.action_outputs(batch), target)

    def on_task_end(self, ctx: CLContext) -> None:
        self.teacher = None  # free the old teacher before copying: never three models in memory
        self.teacher = frozen_snapshot(ctx.model)
        self.teacher_task = int(ctx.task_id)
        self._own_keys = self._unshared_keys(ctx.model, self.teacher)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {**super().state_dict(), "hparams": dict(self.hparams), "teacher_task": self.teacher_task}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        task = state.get("teacher_task")
        self.teacher_task = None if task is None else int(task)
        self.teacher = None

    def tensor_state_dict(self) -> dict[str, torch.Tensor]:
        if self.teacher is None:
            return dict(self._restore or {})  # resumed but not started yet: hand the tensors on unchanged
        state = self.teacher.state_dict()
        return {f"{_TEACHER_KEY}{k}": state[k] for k in self._own_keys}

    def load_tensor_state_dict(self, tensors: Mapping[str, torch.Tensor]) -> None:
        own = {k: v for k, v in tensors.items() if k.startswith(_TEACHER_KEY)}
        self._restore = own or None

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _unshared_keys(model: torch.nn.Module, teacher: torch.nn.Module) -> list[str]:
        shared = {id(p) for p in model.parameters()}
        return [k for k, v in teacher.state_dict(keep_vars=True).items() if id(v) not in shared]

    def _rebuild_teacher(self, model: torch.nn.Module) -> None:
        if not self._restore:
            raise UserError(
                f"The LwF state says a teacher was taken after task {self.teacher_task}, but the checkpoint has no "
                "teacher weights (lwf.teacher.* in its _cl_state.safetensors). Resume from a complete lwf checkpoint "
                "(keep the .safetensors next to the _cl_state.json), or start a new run_id."
            )
        teacher = frozen_snapshot(model)
        own = self._unshared_keys(model, teacher)
        stored = {k[len(_TEACHER_KEY):]: v for k, v in self._restore.items()}
        if sorted(stored) != sorted(own):
            extra, missing = sorted(set(stored) - set(own)), sorted(set(own) - set(stored))
            raise UserError(
                "The LwF teacher in the checkpoint does not fit this model (which parameters are trainable differs: "
                f"stored but not trainable here: {extra[:3] or 'none'}; trainable here but not stored: {missing[:3] or 'none'}). "
                "Resume with the run's own model and LoRA settings, or start a new run_id."
            )
        try:
            teacher.load_state_dict(stored, strict=False)
        except RuntimeError as exc:
            raise UserError(f"The LwF teacher in the checkpoint does not fit this model: {exc}") from None
        self.teacher, self._own_keys, self._restore = teacher, own, None

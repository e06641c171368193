"""DER++: Dark Experience Replay++ (Buzzega, Boschini, Porrello, Abati & Calderara, NeurIPS 2020,
"Dark Experience for General Continual Learning: a Strong, Simple Baseline", arXiv:2004.07211).

Idea: replay the policy's own past *outputs* as well as past labels. Each step
adds two terms to the loss, each on its own batch drawn from memory:

    alpha · MSE(action_outputs(mem_a), stored_outputs(mem_a))     (dark knowledge: keep the old function)
  + beta  · mean per-sample action loss on mem_b                   (ground-truth actions, as in ER)

Variant for action heads: the original stores the network's logits *during*
training, in a reservoir over the stream. Here the memory is ER's reservoir of
`buffer_size_per_task` references per task, and the outputs (the policy's
`action_outputs`, the predicted chunk for a regression head) are computed for
all of them at task end, in eval mode: the outputs of the converged policy
rather than of whatever iterate happened to see a sample, in one pass over
the memory, and deterministic (no augmentation or dropout in the target).

Stored: the references and the sampling RNG state (`_cl_state.json`), and one
float32 tensor [k, horizon, action_dim] of outputs per task
(`derpp.outputs.task_<t>` in `_cl_state.safetensors`), row i belonging to the
i-th stored reference of that task.

Multi-process: every rank stores the same references and computes the outputs
of all of them itself (no communication). Each rank draws its own memory
batches from its own RNG stream (seed, task, rank), as ER does; the penalty's
gradients are all-reduced with the rest of the loss, so parameters stay in sync.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from AlphaBrain.training.continual_learning.algorithms.base import CLContext
from AlphaBrain.training.continual_learning.algorithms.distillation import output_mse, target_outputs
from AlphaBrain.training.continual_learning.algorithms.hparams import check_float, check_int
from AlphaBrain.training.continual_learning.algorithms.registry import register_algorithm
from AlphaBrain.training.continual_learning.algorithms.rehearsal_based.task_memory import TaskEndMemory
from AlphaBrain.utils.errors import ConfigError, UserError

_OUTPUTS_KEY = "derpp.outputs.task_"


@register_algorithm("derpp", aliases=("der++",))
class DERPP(TaskEndMemory):
    name = "derpp"
    HYPERPARAMETERS = {"buffer_size_per_task": 500, "derpp_alpha": 0.5, "derpp_beta": 0.5, "derpp_mem_batch_size": 16}

    def __init__(
        self,
        buffer_size_per_task: int = 500,
        derpp_alpha: float = 0.5,
        derpp_beta: float = 0.5,
        derpp_mem_batch_size: int = 16,
    ):
        super().__init__(buffer_size_per_task)
        self.alpha = check_float("derpp_alpha", derpp_alpha)
        self.beta = check_float("derpp_beta", derpp_beta)
        if self.alpha == 0.0 and self.beta == 0.0:
            raise ConfigError(
                "continual_learning.algorithm.derpp_alpha and derpp_beta are both 0, which turns DER++ off. "
                "Set at least one > 0 (defaults 0.5 / 0.5), or use algorithm.name=sequential."
            )
        self.mem_batch_size = check_int("derpp_mem_batch_size", derpp_mem_batch_size)
        self.hparams.update(derpp_alpha=self.alpha, derpp_beta=self.beta, derpp_mem_batch_size=self.mem_batch_size)
        self.outputs: dict[int, torch.Tensor] = {}  # task -> float32 [k, H, A], row i = i-th stored reference
        self.last_terms: dict[str, float] = {}  # the two terms of the last penalty, unweighted (for inspection)
        self._accelerator: Any = None
        self._pending: tuple[list[dict], torch.Tensor | None, list[dict]] | None = None

    # ------------------------------------------------------------------ hooks
    def on_task_start(self, ctx: CLContext) -> None:
        super().on_task_start(ctx)
        self._accelerator = ctx.accelerator
        self._pending = None

    def observe(self, batch: list[dict], task_id: int) -> None:
        # Draw here (compute_penalty only gets the model); a term with weight 0 costs nothing.
        if self.buffer.is_empty():
            self._pending = None
            return
        slots_a = self.buffer.sample_slots(self.mem_batch_size) if self.alpha > 0 else []
        slots_b = self.buffer.sample_slots(self.mem_batch_size) if self.beta > 0 else []
        targets = torch.stack([self.outputs[t][i] for t, i in slots_a]) if slots_a else None
        self._pending = (self.buffer.samples_at(slots_a), targets, self.buffer.samples_at(slots_b))

    def compute_penalty(self, model: torch.nn.Module) -> torch.Tensor | None:
        if self._pending is None:
            return None
        mem_a, targets, mem_b = self._pending
        self._pending = None  # a memory batch is used by exactly one step
        penalty, self.last_terms = None, {}
        if mem_a:
            distill = output_mse(model.action_outputs(mem_a), targets)
            self.last_terms["output_mse"] = float(distill.detach())
            penalty = self.alpha * distill
        if mem_b:
            replay = model.per_sample_action_loss(mem_b).mean()
            self.last_terms["replay_action_loss"] = float(replay.detach())
            penalty = self.beta * replay if penalty is None else penalty + self.beta * replay
        return penalty

    def on_task_end(self, ctx: CLContext) -> None:
        super().on_task_end(ctx)
        task = int(ctx.task_id)
        stored = self.buffer.samples_at([(task, i) for i in range(self.buffer.get_task_size(task))])
        self.outputs[task] = target_outputs(ctx.model, stored, self.mem_batch_size, ctx.accelerator)

    # ------------------------------------------------------------------ state
    def tensor_state_dict(self) -> dict[str, torch.Tensor]:
        return {f"{_OUTPUTS_KEY}{t}": out for t, out in sorted(self.outputs.items())}

    def load_tensor_state_dict(self, tensors: Mapping[str, torch.Tensor]) -> None:
        outputs = {int(k[len(_OUTPUTS_KEY):]): v.float() for k, v in tensors.items() if k.startswith(_OUTPUTS_KEY)}
        for task in self.buffer.get_task_ids():
            size = self.buffer.get_task_size(task)
            if task not in outputs or len(outputs[task]) != size:
                found = "none" if task not in outputs else f"{len(outputs[task])} rows"
                raise UserError(
                    f"DER++ state of task {task} is incomplete: {size} stored samples but {found} of stored outputs "
                    "in the checkpoint's _cl_state.safetensors. Resume from a checkpoint written by a derpp run "
                    "(its _cl_state.json and .safetensors together), or start a new run_id."
                )
        self.outputs = outputs

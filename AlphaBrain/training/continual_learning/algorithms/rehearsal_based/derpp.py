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
from AlphaBrain.training.continual_learning.algorithms.hparams import Param, check_float, check_int, check_not_all_zero
from AlphaBrain.training.continual_learning.algorithms.registry import register_algorithm
from AlphaBrain.training.continual_learning.algorithms.rehearsal_based.task_memory import TaskEndMemory
from AlphaBrain.utils.errors import UserError

_OUTPUTS_KEY = "derpp.outputs.task_"


@register_algorithm("derpp", aliases=("der++",))
class DERPP(TaskEndMemory):
    name = "derpp"
    HYPERPARAMETERS = {
        **TaskEndMemory.HYPERPARAMETERS,
        "derpp_alpha": Param(0.5, check_float),
        "derpp_beta": Param(0.5, check_float),
        "derpp_mem_batch_size": Param(16, check_int),
    }

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.alpha, self.beta = self.hparams["derpp_alpha"], self.hparams["derpp_beta"]
        check_not_all_zero({"derpp_alpha": self.alpha, "derpp_beta": self.beta},
                           " (defaults 0.5 / 0.5), or use algorithm.name=sequential")
        self.mem_batch_size = self.hparams["derpp_mem_batch_size"]
        self.outputs: dict[int, torch.Tensor] = {}  # task -> float32 [k, H, A], row i = i-th stored reference
        self.last_terms: dict[str, float] = {}  # the two terms of the last penalty, unweighted (for inspection)

    # ------------------------------------------------------------------ hooks
    def compute_penalty(self, model: torch.nn.Module, batch: list[dict]) -> torch.Tensor | None:
        # Two memory batches of its own (the training batch is the current task's); a term with weight 0 costs nothing.
        if self.buffer.is_empty():
            return None
        slots_a = self.buffer.sample_slots(self.mem_batch_size) if self.alpha > 0 else []
        slots_b = self.buffer.sample_slots(self.mem_batch_size) if self.beta > 0 else []
        penalty, self.last_terms = None, {}
        if slots_a:
            targets = torch.stack([self.outputs[t][i] for t, i in slots_a])
            distill = output_mse(model.action_outputs(self.buffer.samples_at(slots_a)), targets)
            self.last_terms["output_mse"] = float(distill.detach())
            penalty = self.alpha * distill
        if slots_b:
            replay = model.per_sample_action_loss(self.buffer.samples_at(slots_b)).mean()
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

"""A-GEM: Averaged Gradient Episodic Memory (Chaudhry, Ranzato, Rohrbach & Elhoseiny, ICLR 2019,
"Efficient Lifelong Learning with A-GEM", arXiv:1812.00420).

Idea: never let a step increase the average loss on past tasks to first order.
After the backward pass of an optimizer step, compute the gradient g_ref of the
mean action loss on a batch drawn from the episodic memory; if the current
gradient g points against it (g·g_ref < 0), replace it by its projection
g - (g·g_ref / g_ref·g_ref) g_ref, which is orthogonal to g_ref. The batch is
never mixed with memory samples (pure A-GEM; for mixing see ER).

Stored: ER's per-task reservoir of sample *references* (`buffer_size_per_task`
per task, filled at each task end), plus per-task counts of projected steps
(`stats`, in `_cl_state.json`). No tensors.

When: `after_backward` of the last micro-batch of each optimizer step only
(`self.ctx.is_optimizer_step`), because only then does `param.grad` hold the
step's full (and, under DDP, all-reduced) gradient.
g_ref comes from `torch.autograd.grad` on the unwrapped policy, not from
`.backward()`: it touches neither `param.grad` nor DDP's gradient hooks.

Multi-process: after DDP's all-reduce, g is identical on every rank. Each rank
draws the memory batch from the same rank-independent RNG stream (seed, task)
and runs the memory forward under a torch RNG seeded by (seed, task, step of the
task), so
g_ref, the sign test and the projection are identical on every rank and the
parameters stay in sync without any extra communication. (This relies on the
forward/backward being deterministic for identical inputs on identical
hardware; GPU kernels that use atomics can break that bit-for-bit.) Under
DeepSpeed or FSDP `param.grad` is partitioned or gone by `after_backward`, so
A-GEM refuses to start there.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from AlphaBrain.training.continual_learning.algorithms.base import CLContext
from AlphaBrain.training.continual_learning.algorithms.distillation import autocast_of
from AlphaBrain.training.continual_learning.algorithms.hparams import Param, check_int
from AlphaBrain.training.continual_learning.algorithms.registry import register_algorithm
from AlphaBrain.training.continual_learning.algorithms.rehearsal_based.task_memory import TaskEndMemory
from AlphaBrain.training.continual_learning.algorithms.rng import derive_seed, seeded_torch_rng
from AlphaBrain.utils.errors import ConfigError


def project_gradient(params: Sequence[torch.nn.Parameter], ref_grads: Sequence[torch.Tensor | None]) -> bool:
    """A-GEM's projection, in place on `param.grad`: g <- g - (g·r / r·r) r when g·r < 0. True if it projected.

    A parameter whose `grad` is None counts as a zero gradient (it gets -(g·r / r·r) r
    when the step is projected); one whose reference gradient is None is left as is.
    """
    pairs = [(p, r) for p, r in zip(params, ref_grads) if r is not None]
    dots = [torch.dot(p.grad.reshape(-1).float(), r.reshape(-1).float()) for p, r in pairs if p.grad is not None]
    norms = [torch.dot(r.reshape(-1).float(), r.reshape(-1).float()) for _, r in pairs]
    if not dots or not norms:
        return False
    # One host sync for both sums; float64 so that millions of terms do not lose the sign of a small dot.
    dot, ref_sq = torch.stack([torch.stack(dots).double().sum(), torch.stack(norms).double().sum()]).tolist()
    if not dot < 0.0 or not ref_sq > 0.0:  # also skips NaN (an overflowed fp16 step is skipped by the scaler anyway)
        return False
    coef = dot / ref_sq
    for p, r in pairs:
        if p.grad is None:
            p.grad = (r * -coef).to(p.dtype)
        else:
            p.grad.sub_(r.to(p.grad.dtype), alpha=coef)
    return True


@register_algorithm("agem", aliases=("a-gem",))
class AGEM(TaskEndMemory):
    name = "agem"
    HYPERPARAMETERS = {**TaskEndMemory.HYPERPARAMETERS, "agem_mem_batch_size": Param(16, check_int)}
    rank_independent_sampling = True  # the projection must be identical on every rank
    needs_param_grad = True  # projects param.grad in place

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.mem_batch_size = self.hparams["agem_mem_batch_size"]
        self.stats: dict[str, dict[str, int]] = {}  # task -> {"steps": with a memory, "projected": of those}

    def on_task_start(self, ctx: CLContext) -> None:
        super().on_task_start(ctx)

    def after_backward(self, model: torch.nn.Module) -> None:
        ctx = self.ctx
        if not ctx.is_optimizer_step or self.buffer.is_empty():  # not the last micro-batch: param.grad is partial
            return
        params = [p for p in model.parameters() if p.requires_grad]
        projected = project_gradient(params, self.reference_gradient(model, params))
        counts = self.stats.setdefault(str(ctx.task_id), {"steps": 0, "projected": 0})
        counts["steps"] += 1
        counts["projected"] += int(projected)

    def reference_gradient(
        self, model: torch.nn.Module, params: Sequence[torch.nn.Parameter]
    ) -> tuple[torch.Tensor | None, ...]:
        """g_ref: gradient of the mean action loss on a memory batch, without touching param.grad."""
        ctx = self.ctx
        samples = self.buffer.sample(self.mem_batch_size)
        # Same memory batch and same augmentation/noise on every rank: g_ref is rank-independent.
        seed = derive_seed(self.seed, ctx.task_id, ctx.step)
        with seeded_torch_rng(seed, params[0].device), autocast_of(ctx.accelerator)():
            loss = model.per_sample_action_loss(samples).mean()
        try:
            return torch.autograd.grad(loss, params, allow_unused=True)
        except RuntimeError as exc:
            if "heckpointing is not compatible" in str(exc):
                raise ConfigError(
                    "A-GEM needs torch.autograd.grad, which reentrant gradient checkpointing does not support. "
                    "Enable gradient checkpointing with use_reentrant=False, or turn it off."
                ) from exc
            raise

    def state_dict(self) -> dict:
        return {**super().state_dict(), "stats": {t: dict(c) for t, c in self.stats.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.stats = {str(t): {k: int(v) for k, v in c.items()} for t, c in state.get("stats", {}).items()}

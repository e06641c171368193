"""Elastic Weight Consolidation (Kirkpatrick et al. 2017, PNAS), with the online variant of
Schwarz et al. 2018 ("Progress & Compress", ICML).

Idea: after each task, tie every trainable parameter to its end-of-task value with a spring
whose stiffness is the parameter's diagonal Fisher information, so parameters that mattered
for earlier tasks move little and the others stay free: penalty (λ/2) Σ F (θ − θ*)².

The Fisher is the diagonal *empirical* Fisher of the action loss: the mean over
`fisher_num_samples` frames of the task of the squared per-sample gradient of
`policy.per_sample_action_loss`, taken in eval mode (no augmentation, no dropout) with
`torch.autograd.grad`, so `param.grad` and the gradient hooks of DDP / DeepSpeed are not
touched. Samples are forwarded `fisher_batch_size` at a time and each sample's gradient is
a separate backward through that micro-batch, which is exact because every policy treats
the samples of a batch independently in eval mode.

Stored: per trainable parameter a Fisher F and an anchor θ* (float32). Online (default):
one pair, F ← γ·F_old + F_new and θ* = the weights at the end of the latest task. Offline:
one pair per task, penalties summed. They go to `<checkpoint>_cl_state.safetensors`
("fisher.<param>" / "anchor.<param>", offline "task<k>.fisher.<param>" / "task<k>.anchor.<param>");
the JSON state lists the consolidated tasks.

Multi-process: every rank computes the same Fisher on its own: the frames are drawn from the
whole task (not the rank's shard) with an RNG seeded by (seed, task), and any randomness of the
loss (e.g. flow-matching noise) runs under a torch RNG forked and seeded the same way, so no
communication is needed. The penalty's gradient joins the action loss's in the same backward,
so DDP / ZeRO average it with the rest and the parameters stay identical across ranks.
"""

from __future__ import annotations

import contextlib
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from AlphaBrain.training.continual_learning.algorithms.base import CLAlgorithm, CLContext
from AlphaBrain.training.continual_learning.algorithms.distillation import autocast_of
from AlphaBrain.training.continual_learning.algorithms.hparams import Param, check_bool, check_float, check_int
from AlphaBrain.training.continual_learning.algorithms.regularization_based._importance import (
    ImportanceTerm,
    QuadraticPenalty,
    snapshot,
    trainable_parameters,
)
from AlphaBrain.training.continual_learning.algorithms.registry import register_algorithm
from AlphaBrain.training.continual_learning.algorithms.rng import FISHER_STREAM, derive_seed, numpy_rng, seeded_torch_rng
from AlphaBrain.utils.errors import ConfigError


def fisher_sample_indices(num_frames: int, num_samples: int, seed: int, task_id: int) -> np.ndarray:
    """Sorted frame indices of a task used for its Fisher: `num_samples` without replacement (all if fewer)."""
    rng = numpy_rng(seed, task_id, FISHER_STREAM)
    n = min(int(num_samples), int(num_frames))
    return np.sort(rng.choice(int(num_frames), size=n, replace=False))


def empirical_fisher(
    model: torch.nn.Module,
    samples: Sequence[dict] | Any,
    indices: Sequence[int],
    batch_size: int,
    autocast: Any = contextlib.nullcontext,
) -> dict[str, torch.Tensor]:
    """{name: mean over `indices` of (∂ loss_i / ∂θ)²} for every trainable parameter (float32).

    `samples[i]` gives a sample dict; `model.per_sample_action_loss` gives the loss of each.
    The model runs in eval mode and is put back in its previous mode.
    """
    named = trainable_parameters(model)
    params = [p for _, p in named]
    fisher = [torch.zeros(p.shape, dtype=torch.float32, device=p.device) for p in params]
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            for start in range(0, len(indices), batch_size):
                examples = [samples[int(i)] for i in indices[start:start + batch_size]]
                with autocast():
                    losses = model.per_sample_action_loss(examples)
                for j in range(len(examples)):
                    grads = torch.autograd.grad(
                        losses[j], params, retain_graph=j < len(examples) - 1, allow_unused=True
                    )
                    for f, g in zip(fisher, grads):
                        if g is not None:  # a parameter this loss does not reach has zero gradient
                            g = g.float()
                            f.addcmul_(g, g)
    finally:
        model.train(was_training)
    count = max(1, len(indices))
    return {name: f.div_(count) for (name, _), f in zip(named, fisher)}


@register_algorithm("ewc")
class EWC(CLAlgorithm):
    name = "ewc"
    HYPERPARAMETERS = {
        "ewc_lambda": Param(10000.0, check_float, hint=" It scales the penalty (lambda/2)·Σ F (θ − θ*)²; 0 turns EWC off."),
        "ewc_gamma": Param(1.0, check_float, strict=True, maximum=1.0,
                           hint=" It is the decay of the old Fisher in online EWC (1 = no decay); a value above 1 "
                                "would inflate old tasks' importance."),
        "online": Param(True, check_bool),
        "fisher_num_samples": Param(256, check_int),
        "fisher_batch_size": Param(1, check_int),
        "fisher_clip": Param(None, check_float, nullable=True, strict=True,
                             hint=" It caps each Fisher entry; null leaves them uncapped."),
    }

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.online = self.hparams["online"]
        self._half_lambda = 0.5 * self.hparams["ewc_lambda"]
        self.terms: list[ImportanceTerm] = []       # online: at most one; offline: one per consolidated task
        self.consolidated: list[int] = []           # task positions whose Fisher is in `terms`
        self._penalty = QuadraticPenalty()

    # ------------------------------------------------------------------ hooks
    def on_task_start(self, ctx: CLContext) -> None:
        self._penalty.clear()
        if self.terms:
            self._penalty.bind(ctx.model, self.terms)

    def compute_penalty(self, model: torch.nn.Module, batch: list[dict]) -> torch.Tensor | None:
        if not self.terms:
            return None
        if self._penalty.model is not model:  # bound once per task; this only runs when called outside the trainer
            self._penalty.bind(model, self.terms)
        return self._penalty() * self._half_lambda

    def on_task_end(self, ctx: CLContext) -> None:
        model = ctx.model
        indices = fisher_sample_indices(len(ctx.task_dataset), self.hparams["fisher_num_samples"], self.seed, ctx.task_id)
        named = trainable_parameters(model)
        device = named[0][1].device if named else torch.device("cpu")
        with seeded_torch_rng(derive_seed(self.seed, ctx.task_id, FISHER_STREAM), device):
            fisher = empirical_fisher(
                model, ctx.task_dataset, indices, self.hparams["fisher_batch_size"], autocast_of(ctx.accelerator)
            )
        anchor = dict(zip([n for n, _ in named], snapshot(p for _, p in named)))
        if self.online and self.terms:
            old, gamma = self.terms[0].importance, self.hparams["ewc_gamma"]
            for name, f in fisher.items():
                f.add_(old[name].to(f.device), alpha=gamma)  # F = F_new + γ·F_old
        clip = self.hparams["fisher_clip"]
        if clip is not None:
            for f in fisher.values():
                f.clamp_(max=clip)
        term = ImportanceTerm(fisher, anchor, "fisher")
        self.terms = [term] if self.online else [*self.terms, term]
        self.consolidated.append(int(ctx.task_id))
        self._penalty.clear()

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {**super().state_dict(), "hparams": dict(self.hparams), "consolidated_tasks": list(self.consolidated)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        saved_online = state.get("hparams", {}).get("online", self.online)
        if saved_online != self.online:
            raise ConfigError(
                f"The checkpoint was written by {'online' if saved_online else 'offline'} EWC but this run sets "
                f"continual_learning.algorithm.online={str(self.online).lower()}. Resume with "
                f"online={str(saved_online).lower()} or start a new run_id."
            )
        self.consolidated = [int(t) for t in state.get("consolidated_tasks", [])]
        self.terms = []
        self._penalty.clear()

    def tensor_state_dict(self) -> dict[str, torch.Tensor]:
        if self.online:
            return self.terms[0].to_tensors("") if self.terms else {}
        out: dict[str, torch.Tensor] = {}
        for task, term in zip(self.consolidated, self.terms):
            out.update(term.to_tensors(f"task{task}."))
        return out

    def load_tensor_state_dict(self, tensors: Mapping[str, torch.Tensor]) -> None:
        self._penalty.clear()
        if not self.consolidated:
            self.terms = []
        elif self.online:
            self.terms = [ImportanceTerm.from_tensors(tensors, "", "fisher")]
        else:
            self.terms = [ImportanceTerm.from_tensors(tensors, f"task{t}.", "fisher") for t in self.consolidated]

    def __repr__(self) -> str:
        h = self.hparams
        return f"EWC(lambda={h['ewc_lambda']:g}, {'online, gamma=%g' % h['ewc_gamma'] if self.online else 'offline'})"

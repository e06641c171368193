"""Synaptic Intelligence (Zenke, Poole & Ganguli 2017, ICML).

Idea: a parameter is important for a task in proportion to how much its own movement lowered
the task's loss during training. Each optimizer step adds to a per-parameter path integral
ω += −g·Δθ (g = gradient of the action loss, Δθ = the step's actual update); at the end of the
task Ω ← max(0, Ω + ω / ((θ_end − θ_start)² + ξ)), the anchor θ* becomes θ_end, and later tasks
pay c·Σ Ω (θ − θ*)².

Computed with hooks only: `after_backward` after the last micro-batch of an optimizer step
(`self.ctx.is_optimizer_step`) records the accumulated gradient and the weights; at the first
`after_backward` of the next step (`self.ctx.micro_batch == 0`, or at `on_task_end` for the
last one) the weights have moved by that step's update and −g·Δθ is added. Between the
micro-batches of one step the weights do not move, so nothing is lost by recording only the
last. The recorded gradient is the *action loss's*: the trainer adds
the penalty to the loss, so its exact gradient 2c·Ω·(θ − θ*) is subtracted from `param.grad`
(as the reference implementation uses the unregularized gradient); with fp16 loss scaling the
gradient is unscaled first. The gradient is read from `param.grad`, which DeepSpeed ZeRO and
FSDP shard or free, so SI refuses to run under them (use EWC, or plain DDP).

Stored: per trainable parameter Ω and θ* (float32) in `<checkpoint>_cl_state.safetensors`
("importance.<param>", "anchor.<param>"); ω lives only during a task (a resume starts at a task
boundary). During a task SI holds four more copies of the trainable parameters (ω, θ_start,
the recorded gradient and weights).

Multi-process: under DDP `param.grad` after the last micro-batch is the all-reduced gradient,
identical on every rank, and so are the weights, hence ω and Ω; no communication is added.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from AlphaBrain.training.continual_learning.algorithms.base import CLAlgorithm, CLContext
from AlphaBrain.training.continual_learning.algorithms.hparams import Param, check_float
from AlphaBrain.training.continual_learning.algorithms.regularization_based._importance import (
    ImportanceTerm,
    QuadraticPenalty,
    snapshot,
    trainable_parameters,
)
from AlphaBrain.training.continual_learning.algorithms.registry import register_algorithm
from AlphaBrain.utils.errors import ConfigError


_PATH_KEY = "si.task_path."


@register_algorithm("si", aliases=("synaptic_intelligence",))
class SI(CLAlgorithm):
    name = "si"
    HYPERPARAMETERS = {
        "si_c": Param(3.0, check_float, hint=" It scales the penalty c·Σ Ω (θ − θ*)²; 0 turns SI off."),
        "si_xi": Param(1e-3, check_float, strict=True, hint=" It is the damping ξ in Ω = ω / (Δθ² + ξ) and keeps Ω finite."),
    }
    needs_param_grad = True  # the path integral reads the step's gradient from param.grad

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.si_c, self.si_xi = self.hparams["si_c"], self.hparams["si_xi"]
        self.term: ImportanceTerm | None = None   # Ω and θ*, summed over the tasks so far
        self.consolidated: list[int] = []
        self._penalty = QuadraticPenalty()
        self._reset_task_buffers()

    def _reset_task_buffers(self) -> None:
        self._names: list[str] = []
        self._params: list[torch.nn.Parameter] = []
        self._omega: list[torch.Tensor] = []        # ω, the path integral of this task
        self._start: list[torch.Tensor] = []        # θ at the start of this task
        self._grad: list[torch.Tensor] = []         # action-loss gradient of the last recorded step
        self._before: list[torch.Tensor] = []       # θ when that gradient was taken
        self._recorded = False
        self._active = False

    # ------------------------------------------------------------------ hooks
    def on_task_start(self, ctx: CLContext) -> None:
        self._reset_task_buffers()
        named = trainable_parameters(ctx.model)
        self._names = [n for n, _ in named]
        self._params = [p for _, p in named]
        self._start = snapshot(self._params)
        self._before = snapshot(self._params)
        self._omega = [torch.zeros_like(t) for t in self._start]
        self._grad = [torch.zeros_like(t) for t in self._start]
        self._penalty.clear()
        if self.term is not None:
            # Bound in trainable_parameters order, the order of the buffers above (`_record` zips them).
            self._penalty.bind(ctx.model, [self.term])
        self._active = True

    def compute_penalty(self, model: torch.nn.Module, batch: list[dict]) -> torch.Tensor | None:
        if self.term is None:
            return None
        if self._penalty.model is not model:  # bound once per task; this only runs when called outside the trainer
            self._penalty.bind(model, [self.term])
        return self._penalty() * self.si_c

    def after_backward(self, model: torch.nn.Module) -> None:
        if not self._active:
            raise RuntimeError("SI.after_backward was called outside a task (on_task_start was not called).")
        if self.ctx.micro_batch == 0 and self._recorded:
            self._integrate()  # the optimizer stepped since the last record
        if self.ctx.is_optimizer_step:
            self._record()     # param.grad now holds the step's whole (all-reduced) gradient

    def on_task_end(self, ctx: CLContext) -> None:
        if not self._active:
            raise RuntimeError("SI.on_task_end was called without on_task_start.")
        if self._recorded:
            self._integrate()
        end = snapshot(self._params)
        old = self.term.importance if self.term is not None else {}
        importance = {}
        with torch.no_grad():
            for name, w, start, theta in zip(self._names, self._omega, self._start, end):
                contribution = w / ((theta - start).square() + self.si_xi)
                if name in old:
                    contribution.add_(old[name].to(contribution.device))
                importance[name] = contribution.clamp_(min=0.0)  # negative Ω would reward drifting away
        self.term = ImportanceTerm(importance, dict(zip(self._names, end)), "importance")
        self.consolidated.append(int(ctx.task_id))
        self._penalty.clear()
        self._reset_task_buffers()

    # ------------------------------------------------------------------ path integral
    @torch.no_grad()
    def _record(self) -> None:
        if self._params and all(p.grad is None for p in self._params):
            raise ConfigError(
                "SI found no gradient in param.grad after the backward pass: the gradients were moved elsewhere "
                "(DeepSpeed ZeRO stage >= 2 or FSDP do this). SI needs param.grad: use "
                "continual_learning.algorithm.name=ewc, or train without ZeRO / FSDP (plain DDP)."
            )
        scale = None
        scaler = getattr(self.ctx.accelerator, "scaler", None)
        if scaler is not None and scaler.is_enabled():
            scale = float(scaler.get_scale())
        for buf, before, p in zip(self._grad, self._before, self._params):
            if p.grad is None:
                buf.zero_()
            else:
                buf.copy_(p.grad)
                if scale is not None:
                    # fp16: grads are still scaled; a step with inf/nan is skipped (Δθ = 0), so zero them.
                    buf.div_(scale).nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
            before.copy_(p)
        for (p, omega, anchor), buf in zip(self._penalty.triples, self._grad):
            buf.addcmul_(omega, p.float() - anchor, value=-2.0 * self.si_c)  # keep the action loss's gradient only
        self._recorded = True

    @torch.no_grad()
    def _integrate(self) -> None:
        for w, g, before, p in zip(self._omega, self._grad, self._before, self._params):
            w.addcmul_(g, p.float() - before, value=-1.0)  # ω += −g·Δθ
        self._recorded = False

    # ------------------------------------------------------------------ state
    # Inside a task (a mid-task checkpoint) the running path integral is state too: ω, the last recorded
    # gradient and the θ it was taken at. θ at the task start is not: a resumed run replays on_task_start.
    def state_dict(self) -> dict:
        state = {**super().state_dict(), "hparams": dict(self.hparams), "consolidated_tasks": list(self.consolidated)}
        if self._active:
            state["task_recorded"] = self._recorded
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.consolidated = [int(t) for t in state.get("consolidated_tasks", [])]
        self.term = None
        self._penalty.clear()
        self._recorded = bool(state.get("task_recorded", False))

    def tensor_state_dict(self) -> dict[str, torch.Tensor]:
        tensors = self.term.to_tensors("") if self.term is not None else {}
        if self._active:
            for kind, buffers in self._path_buffers().items():
                tensors.update({f"{_PATH_KEY}{kind}.{n}": t for n, t in zip(self._names, buffers)})
        return tensors

    def load_tensor_state_dict(self, tensors: Mapping[str, torch.Tensor]) -> None:
        self._penalty.clear()
        path = {k: v for k, v in tensors.items() if k.startswith(_PATH_KEY)}
        rest = {k: v for k, v in tensors.items() if not k.startswith(_PATH_KEY)}
        self.term = ImportanceTerm.from_tensors(rest, "", "importance") if self.consolidated else None
        if path and self._active:  # laid over the replayed task start, whose buffers have the right shapes
            with torch.no_grad():
                for kind, buffers in self._path_buffers().items():
                    for name, buf in zip(self._names, buffers):
                        buf.copy_(path[f"{_PATH_KEY}{kind}.{name}"])

    def _path_buffers(self) -> dict[str, list[torch.Tensor]]:
        return {"omega": self._omega, "grad": self._grad, "before": self._before}

    def __repr__(self) -> str:
        return f"SI(c={self.si_c:g}, xi={self.si_xi:g})"

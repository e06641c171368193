"""Maximally Interfered Retrieval (Aljundi et al., NeurIPS 2019, arXiv:1908.04742), amortized or per step.

Idea: replay the stored samples whose loss the coming update would raise the
most, instead of uniformly drawn ones.

Storage is ER's (this class derives from it): a per-task reservoir of sample
references, filled at each task end, and the same batch mixing (n =
max(2, round(B * replay_batch_ratio)) samples of each batch are replay). What
MIR adds is the choice of *which* stored samples are replayed. `mir_mode`
selects how often candidates are scored and how replay slots are filled.

Scoring (both modes):

  1. draw candidates uniformly from the buffer;
  2. loss of each candidate at the current parameters, L(θ, c);
  3. virtual SGD step θ_v = θ − η·g, g = a gradient of current-task samples only;
  4. loss of each candidate at θ_v, L(θ_v, c); θ is then restored bitwise;
  5. rank the candidates by Δ = L(θ_v, c) − L(θ, c), largest first.

`amortized` (the default, the seeds' recipe): every `mir_refresh_interval`
optimizer steps (and as soon as replay starts, while nothing is cached) score
`mir_candidate_size` candidates and cache the `mir_top_k` best. g is the
gradient of that step's batch, which replays nothing. Until the next refresh
every step's n replay samples are drawn from that cache, with replacement when
n > mir_top_k (logged once: with the defaults 8 cached samples fill every
step's replay slots). While the cache is empty (task 0, or no gradient could be
captured) ER's uniform / balanced draw is used. The cache is emptied at each
task end (the buffer gains a task that was never a candidate), so each task
starts with a refresh at its first step.

`per_step` (the paper's retrieval): every micro-batch scores fresh candidates
and replays n DISTINCT ones. g is the gradient of the batch's current-task
samples (the B − n it keeps), from one extra forward and backward of them
(`torch.autograd.grad` on the unwrapped model: no `param.grad` is touched, no
hooks are involved). max(mir_candidate_size, n) candidates are drawn (raised to
n, logged once, so that n distinct ones exist). The replay slots take the
top min(mir_top_k, n) candidates by Δ; when mir_top_k < n the remaining slots
take the other candidates in their uniform draw order, i.e. uniformly random
distinct stored samples (logged once). The replay share therefore stays ER's
whatever top_k is. Replayed samples repeat only when the whole buffer holds
fewer than the number of candidates (the uniform draw then repeats, as ER's).
`mir_refresh_interval` is not used. Cost per step: one extra forward+backward
of B − n samples and two no-grad forwards of the candidates.

In `amortized` mode the gradient is captured with `Parameter.register_hook` during the trainer's own
backward, never with an extra backward: hooks see the gradient before DDP
reduces it or DeepSpeed ZeRO-2 moves it into its buffer (where `param.grad` is
None afterwards). Hooks are installed in `on_task_start`, removed in
`on_task_end`, and copy gradients only on a step that precedes a refresh; with
gradient accumulation the micro-batch gradients of that step are summed. With
fp16 loss scaling the scale is divided out. With `mir_lora_only` only LoRA
parameters (names containing "lora_") take the virtual step; a model without
LoRA uses all trainable parameters.

Both candidate evaluations run under `torch.no_grad` in the model's current
mode (training mode inside the trainer, so the losses are those replay will
train on), under a torch RNG seeded the same way both times (seed, rank, global
step): augmentation and dropout draw the same noise at θ and θ_v, so Δ measures
the parameter change only, and the trainer's RNG stream is left untouched.
Parameters and buffers (e.g. BatchNorm statistics a training-mode forward would
update) are copied back, so the model is bitwise what it was.

Steps are the trainer's: `self.ctx.global_step` (optimizer steps since the start
of the run) schedules refreshes, `self.ctx.micro_batch` / `is_optimizer_step`
mark the first and last micro-batch of a step.

Stored (JSON, `_cl_state.json`): ER's buffer (with its sampling RNG, which draws
the candidates), the cached references, the global step of the last refresh and
the cache-sampling RNG state, so a state restored mid-task replays exactly what
the original would; at a task-end checkpoint the cache is empty, which keeps
resumes exact on any number of processes. `per_step` keeps no cache: its noise
is seeded by (seed, rank, global step, micro-batch), its candidates come from
the buffer's RNG.

Multi-process: every rank holds the same buffer (see ER). Each rank draws its
own candidates (the buffer's per-rank sampling RNG) and ranks them with its own
rank-local gradient (the hook fires before the all-reduce), so caches differ
between ranks just as their data shards do. Parameters stay identical across
ranks: the virtual step is undone bitwise and no rank-specific value reaches
the real update. Caches are emptied at task end, so the checkpoint (written by
rank 0) holds no rank-specific cache.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Mapping, Optional

import torch

from AlphaBrain.training.continual_learning.algorithms.base import CLContext
from AlphaBrain.training.continual_learning.algorithms.distillation import autocast_of
from AlphaBrain.training.continual_learning.algorithms.hparams import (
    Param, check_at_most, check_bool, check_choice, check_float, check_int)
from AlphaBrain.training.continual_learning.algorithms.registry import register_algorithm
from AlphaBrain.training.continual_learning.algorithms.rehearsal_based.er import ER, num_replay_samples
from AlphaBrain.training.continual_learning.algorithms.rng import (
    MIR_CACHE_STREAM,
    derive_seed,
    numpy_rng,
    numpy_rng_from_state,
    seeded_torch_rng,
)

logger = logging.getLogger(__name__)

Ref = tuple[int, tuple[int, int, int]]  # (task_id, (dataset_index, episode_index, frame_index))


@register_algorithm("mir")
class MIR(ER):
    name = "mir"
    DEFAULT_VIRTUAL_LR = 1e-4
    LORA_MARKER = "lora_"
    MODES = ("amortized", "per_step")
    HYPERPARAMETERS = {
        **ER.HYPERPARAMETERS,
        "mir_mode": Param("amortized", check_choice, choices=MODES),
        "mir_refresh_interval": Param(200, check_int),
        "mir_candidate_size": Param(16, check_int),
        "mir_top_k": Param(8, check_int),
        "mir_virtual_lr": Param(None, check_float, nullable=True, strict=True,
                                hint=f" Use a positive number, or null for {DEFAULT_VIRTUAL_LR}."),
        "mir_lora_only": Param(True, check_bool),
    }

    def __init__(self, **params: Any):
        super().__init__(**params)
        h = self.hparams
        check_at_most("mir_top_k", h["mir_top_k"], "mir_candidate_size", h["mir_candidate_size"],
                      " The cache keeps the top-k of the scored candidates.")
        if h["mir_virtual_lr"] is None:
            h["mir_virtual_lr"] = self.DEFAULT_VIRTUAL_LR
        self.refresh_interval, self.candidate_size, self.top_k = (
            h["mir_refresh_interval"], h["mir_candidate_size"], h["mir_top_k"])
        self.virtual_lr, self.lora_only = h["mir_virtual_lr"], h["mir_lora_only"]
        self.per_step = h["mir_mode"] == "per_step"
        # Persistent state (state_dict).
        self._cache: list[Ref] = []
        self._last_refresh: Optional[int] = None  # global step of the last refresh
        self._rng = numpy_rng(0)                  # draws replay samples from the cache
        # Per-task runtime state (on_task_start).
        self._model: Optional[torch.nn.Module] = None
        self._params: list[tuple[str, torch.nn.Parameter]] = []
        self._handles: list[Any] = []
        self._grads: dict[str, torch.Tensor] = {}
        self._capturing = False
        self._logged_no_lora = False
        self._logged: set[str] = set()            # one-time notices already given (see _notice)
        self.last_refresh: dict = {}              # candidates and their Δ, for logging and tests
        self.refresh_count, self.refresh_seconds = 0, 0.0  # this process's refreshes (not saved), for benchmarks

    # ------------------------------------------------------------------ hooks
    def on_task_start(self, ctx: CLContext) -> None:
        super().on_task_start(ctx)
        self._rng = numpy_rng(self.buffer.seed, ctx.task_id, self.rank, MIR_CACHE_STREAM)
        self._capturing, self._grads = False, {}
        self._install_hooks(ctx.model)

    def modify_batch(self, batch: list[dict], task_id: int) -> list[dict]:
        if self.per_step:
            return self._per_step_batch(batch, task_id)
        if self.ctx.micro_batch == 0:  # first micro-batch of an optimizer step
            self._capturing = self._refresh_due()
            self._grads = {}
        if self._capturing:
            # The gradient of a capture step must be the current task's alone (g_curr in the paper).
            return batch
        if not self._cache:
            return super().modify_batch(batch, task_id)
        n = num_replay_samples(len(batch), self.replay_batch_ratio)
        if n == 0:
            return batch
        if n > len(self._cache):
            self._notice("repeats", "MIR (amortized): each step replays %d samples drawn with replacement from a cache "
                         "of %d (mir_top_k), so the same samples repeat within a step; mir_mode=per_step replays "
                         "distinct top-ranked samples.", n, len(self._cache))
        picks = self._rng.choice(len(self._cache), size=n, replace=n > len(self._cache))
        return batch[: len(batch) - n] + self.buffer.decode([self._cache[int(i)] for i in picks])

    def after_backward(self, model: torch.nn.Module) -> None:
        if self._capturing and self.ctx.is_optimizer_step:  # the step's whole gradient is captured
            self._capturing = False
            self._refresh(model)
            self._grads = {}

    def on_task_end(self, ctx: CLContext) -> None:
        self._remove_hooks()
        self._model, self._params, self._grads, self._capturing = None, [], {}, False
        # The cache ranks a candidate pool that is about to gain this task's samples, and on several processes
        # it is rank-specific while the checkpoint written next is rank 0's: none of it crosses a task boundary.
        # The next task refreshes at its first step.
        self._cache = []
        super().on_task_end(ctx)

    # ------------------------------------------------------ gradient capture
    def _install_hooks(self, model: torch.nn.Module) -> None:
        self._remove_hooks()  # a task that crashed before on_task_end must not leave a second set behind
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        params = trainable
        if self.lora_only:
            params = [(n, p) for n, p in trainable if self.LORA_MARKER in n]
            if not params and not self._logged_no_lora:
                self._logged_no_lora = True
                if self.rank == 0:
                    logger.warning(
                        "MIR: mir_lora_only=true but the model has no LoRA parameters (no name contains %r); the "
                        "virtual step uses all %d trainable parameter tensors. Set mir_lora_only=false to silence this.",
                        self.LORA_MARKER, len(trainable),
                    )
            params = params or trainable
        self._model, self._params = model, params
        if not self.per_step:  # per_step computes its gradient itself (_current_gradient)
            self._handles = [p.register_hook(self._make_hook(n)) for n, p in params]

    def _remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _make_hook(self, name: str):
        def hook(grad: torch.Tensor) -> None:
            if not self._capturing:
                return
            held = self._grads.get(name)
            # Clone: autograd may hand this very tensor to `param.grad`, which clipping later scales in place.
            self._grads[name] = grad.detach().clone() if held is None else held.add_(grad.detach())

        return hook

    @property
    def virtual_params(self) -> list[str]:
        """Names of the parameters that take the virtual step (and whose gradients are captured)."""
        return [n for n, _ in self._params]

    @property
    def captured_grads(self) -> dict[str, torch.Tensor]:
        """Gradients captured so far in the current capture step (name -> tensor; empty outside one)."""
        return self._grads

    # -------------------------------------------------------------- refresh
    def _refresh_due(self) -> bool:
        if self._model is None or not self._params or self.buffer.is_empty():
            return False
        step = self.ctx.global_step
        return not self._cache or self._last_refresh is None or step - self._last_refresh >= self.refresh_interval

    def _refresh(self, model: torch.nn.Module) -> None:
        step = self._last_refresh = self.ctx.global_step
        pairs = [(p, self._grads[n]) for n, p in self._params if n in self._grads]
        scale = 1.0
        scaler = getattr(self.ctx.accelerator, "scaler", None)
        if scaler is not None and scaler.is_enabled():
            scale = float(scaler.get_scale())  # fp16 loss scaling: hooks saw scaled gradients
        scored = self._score(model, pairs, scale, self.candidate_size, derive_seed(self.buffer.seed, self.rank, step))
        if scored is None:
            return
        refs, delta = scored
        order = torch.argsort(delta, descending=True, stable=True)[: self.top_k].tolist()
        self._cache = [refs[i] for i in order]
        self.last_refresh = {"step": step, "candidates": refs, "delta": delta.tolist(), "top": order}

    def _per_step_batch(self, batch: list[dict], task_id: int) -> list[dict]:
        """The paper's retrieval: score fresh candidates against this batch's current-task gradient, replay n distinct."""
        if self._model is None or not self._params or self.buffer.is_empty():
            return super().modify_batch(batch, task_id)
        n = num_replay_samples(len(batch), self.replay_batch_ratio)
        if n == 0:
            return batch
        kept, model, step = batch[: len(batch) - n], self._model, self.ctx.global_step
        seed = derive_seed(self.buffer.seed, self.rank, step, self.ctx.micro_batch)
        if self.candidate_size < n:
            self._notice("candidates", "MIR (per_step): mir_candidate_size=%d < %d replay samples per step; %d "
                         "candidates are drawn so that the replayed samples are distinct.", self.candidate_size, n, n)
        scored = self._score(model, self._current_gradient(model, kept, seed), 1.0, max(self.candidate_size, n), seed)
        if scored is None:
            return super().modify_batch(batch, task_id)
        refs, delta = scored
        top = min(self.top_k, n)
        if top < n:
            self._notice("fill", "MIR (per_step): mir_top_k=%d < %d replay samples per step; each step replays the %d "
                         "top-ranked candidates and %d other distinct candidates drawn uniformly.", self.top_k, n, top,
                         n - top)
        ranked = torch.argsort(delta, descending=True, stable=True)[:top].tolist()
        chosen = set(ranked)
        # Candidates were drawn uniformly, so taking the unranked ones in draw order is a uniform distinct fill.
        picks = ranked + [i for i in range(len(refs)) if i not in chosen][: n - top]
        self.last_refresh = {"step": step, "candidates": refs, "delta": delta.tolist(), "top": ranked,
                             "replayed": picks}
        return kept + self.buffer.decode([refs[i] for i in picks])

    def _current_gradient(self, model: torch.nn.Module, samples: list[dict], seed: int):
        """(param, gradient) of the mean loss of `samples`, by autograd.grad: `param.grad` and the trainer's RNG untouched."""
        params = [p for _, p in self._params]
        saved_buffers = [b.detach().clone() for b in model.buffers()]
        device = next(model.parameters()).device
        try:
            with seeded_torch_rng(seed, device):
                with autocast_of(self.ctx.accelerator)():
                    loss = model.per_sample_action_loss(samples).float().mean()
                grads = torch.autograd.grad(loss, params, allow_unused=True)
        finally:
            with torch.no_grad():
                for b, s in zip(model.buffers(), saved_buffers):
                    b.copy_(s)
        return [(p, g) for p, g in zip(params, grads) if g is not None]

    def _score(self, model: torch.nn.Module, pairs: list, scale: float, count: int, seed: int):
        """(candidates, Δ per candidate) for `count` uniformly drawn candidates and the gradient `pairs`, or None."""
        if not pairs:
            return None
        step = self.ctx.global_step
        if not bool(torch.stack([torch.isfinite(g).all() for _, g in pairs]).all()):  # one device sync
            logger.warning("MIR: non-finite gradient at step %d; no candidates scored (%s).", step,
                           "uniform replay this step" if self.per_step else "the replay cache is kept as it was")
            return None
        start = time.perf_counter()
        refs = self.buffer.sample_refs(count)
        samples = self.buffer.decode(refs)
        before = self._losses(model, samples, seed)
        saved = [p.detach().clone() for p, _ in pairs]
        saved_buffers = [b.detach().clone() for b in model.buffers()]
        try:
            with torch.no_grad():
                for p, g in pairs:
                    p.add_(g.to(p.dtype), alpha=-self.virtual_lr / scale)
            after = self._losses(model, samples, seed)
        finally:
            with torch.no_grad():
                for (p, _), s in zip(pairs, saved):
                    p.copy_(s)
                for b, s in zip(model.buffers(), saved_buffers):
                    b.copy_(s)
        self.refresh_count += 1
        self.refresh_seconds += time.perf_counter() - start
        return refs, after - before

    def _notice(self, key: str, message: str, *args: Any) -> None:
        """Log `message` once per run (on rank 0): the setting it describes holds for every step."""
        if key not in self._logged:
            self._logged.add(key)
            if self.rank == 0:
                logger.warning(message, *args)

    def _losses(self, model: torch.nn.Module, samples: list[dict], seed: int) -> torch.Tensor:
        """Per-sample losses under no_grad, with torch's RNG seeded with `seed` (same noise on every call)."""
        device = next(model.parameters()).device
        with seeded_torch_rng(seed, device), torch.no_grad(), autocast_of(self.ctx.accelerator)():
            return model.per_sample_action_loss(samples).detach().float().cpu()

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict:
        return {
            **super().state_dict(),
            "mir": {
                "cache": [[task, list(ref)] for task, ref in self._cache],
                "last_refresh": self._last_refresh,
                "rng_state": self._rng.bit_generator.state,
            },
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        mir = state.get("mir", {})
        self._cache = [(int(task), tuple(int(x) for x in ref)) for task, ref in mir.get("cache", [])]
        last = mir.get("last_refresh")
        self._last_refresh = None if last is None else int(last)
        if "rng_state" in mir:
            self._rng = numpy_rng_from_state(mir["rng_state"])

    @property
    def cache(self) -> list[Ref]:
        """The cached replay references (task_id, (dataset_index, episode_index, frame_index)), best first."""
        return list(self._cache)

    def __repr__(self) -> str:
        return (
            f"MIR(mode={self.hparams['mir_mode']}, refresh={self.refresh_interval}, "
            f"candidates={self.candidate_size}, top_k={self.top_k}, "
            f"virtual_lr={self.virtual_lr}, lora_only={self.lora_only})"
        )

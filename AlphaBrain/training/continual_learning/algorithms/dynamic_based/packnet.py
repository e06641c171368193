"""PackNet (Mallya & Lazebnik, CVPR 2018, "PackNet: Adding Multiple Tasks to a Single Network by
Iterative Pruning", arXiv:1711.05769).

Idea: pack the tasks into disjoint subsets of one network's weights. Task k trains only the
weights no earlier task kept; after (1 - retrain_fraction) of its steps the smallest-magnitude of
those are pruned (set to exactly 0 and released for later tasks), the rest are retrained for the
remaining steps and then belong to task k for good. Task k's model is the network with the weights
of tasks 0..k and zeros elsewhere, so once trained it never changes: no forgetting, at the price
of needing the task's identity at evaluation and a shrinking share of capacity per task.

Which weights: every trainable parameter with dim >= 2 (linear, conv and embedding weights) is
prunable. The other trainable parameters (biases, norm scales) cannot be split this way; as in the
paper they train during task 0 only and stay frozen afterwards.

Ownership: one uint8 map per prunable parameter, 0 = free, k + 1 = kept by task position k (so at
most 254 tasks). It is the method's whole tensor state and, as `model.task_conditioning.WeightMasks`,
what evaluation uses to build task k's model from the checkpoint.

Frozen exactly: a weight the current task may not change (owned by an earlier task, pruned by this
one, a non-prunable parameter after task 0) gets a zero gradient in `after_backward` (so it does not
count in the clipping norm) and is copied back from a snapshot in `after_optimizer_step`, because
AdamW's decoupled weight decay and momentum move a weight whose gradient is zero. The snapshot is
taken lazily at the first hook of a task and again right after pruning; after a mid-task resume it
is rebuilt from the restored weights (the frozen entries hold the same values in both).

Multi-process: pruning is a function of the weights and the owner maps, which DDP keeps identical on
every rank, and the gradient is masked after DDP's all-reduce, so no communication is needed.
DeepSpeed ZeRO / FSDP keep no whole `param.grad` after backward: refused (`needs_param_grad`).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional

import torch

from AlphaBrain.model.task_conditioning import TENSOR_PREFIX, WeightMasks, conditioning_state
from AlphaBrain.training.continual_learning.algorithms.base import CLAlgorithm, CLContext
from AlphaBrain.training.continual_learning.algorithms.hparams import Param, check_bool, check_choice, check_ratio
from AlphaBrain.training.continual_learning.algorithms.registry import register_algorithm
from AlphaBrain.utils.errors import ConfigError

AUTO = "auto"
#: owner values are k + 1 in a uint8 with 0 = free, and 255 is left unused
MAX_TASKS = 254
_OWNER_KEY = f"{TENSOR_PREFIX}owner."
_INT_OF_SIZE = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def check_prune_ratio(name: str, value: Any) -> Any:
    """"auto" or a fraction strictly between 0 and 1."""
    if value == AUTO:
        return value
    return check_ratio(name, value, hint=' Or "auto": task k of T keeps 1/(T - k) of the weights still free.')


def check_retrain_fraction(name: str, value: Any) -> float:
    """A fraction in [0, 1): the share of a task's steps that retrain the kept weights after pruning."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and 0.0 <= float(value) < 1.0
    if not ok:
        raise ConfigError(
            f"continual_learning.algorithm.{name} must be a number in [0, 1), got {value!r}: it is the share of each "
            "task's steps spent retraining the kept weights after pruning (0 = prune at the end of the task)."
        )
    return float(value)


def _bits(tensor: torch.Tensor) -> torch.Tensor:
    """The same memory as an integer tensor of the same element size (for exact bitwise selection)."""
    return tensor.detach().view(_INT_OF_SIZE[tensor.element_size()])


def prunable(param: torch.nn.Parameter) -> bool:
    """A weight matrix or kernel (linear, conv, embedding): the entries PackNet splits between tasks."""
    return param.requires_grad and param.dim() >= 2


def keep_largest(params: list[torch.Tensor], free: list[torch.Tensor], n_keep: int) -> list[torch.Tensor]:
    """Boolean masks selecting exactly `n_keep` of the `free` entries, over all `params` together, with the
    largest magnitude; ties at the threshold go to the earlier tensor, then the lower flat index, so the
    choice is a deterministic function of the weights (a resumed run prunes exactly the same entries)."""
    total = sum(int(f.sum()) for f in free)
    if n_keep >= total:
        return [f.clone() for f in free]
    if n_keep <= 0:
        return [torch.zeros_like(f) for f in free]
    values = torch.cat([p.detach()[f].abs().float() for p, f in zip(params, free)])
    threshold = torch.kthvalue(values, total - n_keep + 1).values  # the n_keep-th largest magnitude
    del values
    kept = [(p.detach().abs().float() > threshold) & f for p, f in zip(params, free)]
    need = n_keep - sum(int(k.sum()) for k in kept)
    for p, f, k in zip(params, free, kept):
        if need <= 0:
            break
        ties = ((p.detach().abs().float() == threshold) & f).flatten()
        first = ties & (ties.cumsum(0) <= need)
        k.view(-1).logical_or_(first)
        need -= int(first.sum())
    return kept


@register_algorithm("packnet")
class PackNet(CLAlgorithm):
    name = "packnet"
    HYPERPARAMETERS = {
        "prune_ratio": Param(AUTO, check_prune_ratio),
        "retrain_fraction": Param(0.25, check_retrain_fraction),
        "prune_scope": Param("layer", check_choice, choices=("layer", "global")),
        "prune_last_task": Param(False, check_bool),
    }
    needs_param_grad = True  # zeros the frozen entries of param.grad before clipping and the optimizer step
    writes_weights = True  # puts frozen weights back after each step: a backend's master copy would undo it

    def __init__(self, **params: Any):
        super().__init__(**params)
        if self.hparams["prune_last_task"] and self.hparams["prune_ratio"] == AUTO:
            raise ConfigError(
                'continual_learning.algorithm.prune_last_task=true needs a number for prune_ratio, but prune_ratio is '
                '"auto", which gives the last task every weight still free. Set prune_ratio to a fraction in (0, 1) '
                "(e.g. 0.5), or prune_last_task=false."
            )
        self.owners: dict[str, torch.Tensor] = {}   # prunable parameter name -> uint8 owner map
        self.tasks_done: list[int] = []
        self.task: Optional[int] = None             # position being trained, None between tasks
        self.pruned = False                         # whether the current task has pruned yet
        # (parameter, uint8 mask: 1 where the current phase may change it, or None = all frozen, snapshot) for every
        # parameter the current phase freezes at least partly, taken from the weights when first needed (`_bound`
        # is the model it was built for; None = build it at the next hook).
        self._guards: list[tuple[torch.nn.Parameter, Optional[torch.Tensor], torch.Tensor]] = []
        self._bound: Optional[torch.nn.Module] = None

    # ------------------------------------------------------------------ schedule
    def prune_step(self, steps: int) -> int:
        """Step of the task at whose first micro-batch pruning happens; `steps` (= at the task end) means no retraining."""
        if self.hparams["retrain_fraction"] == 0.0:
            return steps
        # At least one step trains the free weights before they are ranked by magnitude.
        return min(steps, max(1, round(steps * (1.0 - self.hparams["retrain_fraction"]))))

    def keep_share(self, task: int, num_tasks: int) -> float:
        """Fraction of the weights free at the start of `task` that it keeps."""
        last = task >= num_tasks - 1
        if self.hparams["prune_ratio"] == AUTO:
            return 1.0 / max(1, num_tasks - task)
        if last and not self.hparams["prune_last_task"]:
            return 1.0
        return 1.0 - self.hparams["prune_ratio"]

    # ------------------------------------------------------------------ hooks
    def on_task_start(self, ctx: CLContext) -> None:
        if ctx.num_tasks > MAX_TASKS:
            raise ConfigError(
                f"PackNet records which task owns each weight in one byte, so a stream can have at most {MAX_TASKS} "
                f"tasks; continual_learning.task_sequence has {ctx.num_tasks}. Split it into several runs, or use "
                "another algorithm."
            )
        model = ctx.model
        if not self.owners:
            self.owners = {n: torch.zeros(p.shape, dtype=torch.uint8, device=p.device)
                           for n, p in model.named_parameters() if prunable(p)}
            if not self.owners:
                raise ConfigError(
                    "PackNet found no trainable weight matrix (parameter with 2 or more dimensions) to split between "
                    "tasks: every trainable parameter is a bias or a norm scale. Use a model (or lora.* settings) with "
                    "trainable weight matrices, or another algorithm."
                )
        self._check_owners(dict(model.named_parameters()))
        self.task, self.pruned = int(ctx.task_id), False
        self._release()

    def observe(self, batch: list[dict], task_id: int) -> None:
        ctx = self.ctx
        model = ctx.model
        if not self.pruned and ctx.micro_batch == 0 and ctx.step >= self.prune_step(ctx.steps):
            self._prune(model)
        self._ensure_bound(model)

    def after_backward(self, model: torch.nn.Module) -> None:
        if not self.ctx.is_optimizer_step:  # the gradient of the step is not whole yet
            return
        self._ensure_bound(model)
        for param, trainable, _ in self._guards:
            if param.grad is None:
                continue
            if trainable is None:
                param.grad.zero_()
            else:
                # On the bit pattern: a frozen entry becomes +0.0 even if it was inf or NaN, and an integer multiply
                # by a 0/1 byte runs several times faster on CPU than masked_fill_ with a bool mask.
                _bits(param.grad).mul_(trainable)

    def after_optimizer_step(self, model: torch.nn.Module) -> None:
        self._ensure_bound(model)
        with torch.no_grad():
            for param, trainable, snapshot in self._guards:
                if trainable is None:
                    param.copy_(snapshot)
                    continue
                # snapshot ^ ((param ^ snapshot) * trainable): param where trainable, the snapshot's exact bits
                # elsewhere (the same as torch.where, which is about four times slower on CPU).
                weights, frozen_bits = _bits(param), _bits(snapshot)
                torch.bitwise_xor(frozen_bits, torch.bitwise_xor(weights, frozen_bits).mul_(trainable), out=weights)

    def on_task_end(self, ctx: CLContext) -> None:
        if not self.pruned:
            self._prune(ctx.model)
        self.tasks_done.append(int(ctx.task_id))
        self.task, self.pruned = None, False
        self._release()

    # ------------------------------------------------------------------ pruning and freezing
    def _prune(self, model: torch.nn.Module) -> None:
        """Keep the largest free weights for the current task, zero the others (they stay free)."""
        ctx, task = self.ctx, int(self.task if self.task is not None else self.ctx.task_id)
        params = dict(model.named_parameters())
        self._check_owners(params)
        names = list(self.owners)
        free = [self.owners[n].to(params[n].device) == 0 for n in names]
        share = self.keep_share(task, ctx.num_tasks)

        def count(masks: list[torch.Tensor]) -> int:
            return math.floor(sum(int(m.sum()) for m in masks) * share + 0.5)

        if self.hparams["prune_scope"] == "global":
            kept = keep_largest([params[n] for n in names], free, count(free))
        else:
            kept = [keep_largest([params[n]], [f], count([f]))[0] for n, f in zip(names, free)]
        with torch.no_grad():
            for n, f, k in zip(names, free, kept):
                owner = self.owners[n] = self.owners[n].to(params[n].device)
                owner.masked_fill_(k, task + 1)
                params[n].masked_fill_(f & ~k, 0)
        self.pruned = True
        self._release()

    def _check_owners(self, params: Mapping[str, torch.nn.Parameter]) -> None:
        names = {n for n, p in params.items() if prunable(p)}
        missing, extra = sorted(set(self.owners) - names), sorted(names - set(self.owners))
        bad = [n for n in self.owners if n in params and tuple(params[n].shape) != tuple(self.owners[n].shape)]
        if missing or extra or bad:
            example = (missing or extra or bad)[0]
            raise ConfigError(
                f"PackNet's owner maps were written for other trainable weights than this model has ({len(missing)} "
                f"stored but not trainable now, {len(extra)} trainable but not stored, {len(bad)} of another shape; "
                f"e.g. {example}). Resume with the run's own model, LoRA and freezing settings, or start a new run_id."
            )

    def _release(self) -> None:
        self._guards, self._bound = [], None

    def _ensure_bound(self, model: torch.nn.Module) -> None:
        if self._bound is model:
            return
        task = int(self.task if self.task is not None else self.ctx.task_id)
        params = dict(model.named_parameters())
        self._check_owners(params)
        guards = []
        for name, param in params.items():
            if not param.requires_grad:
                continue  # never in the optimizer
            if name in self.owners:
                owner = self.owners[name] = self.owners[name].to(param.device)
                trainable = owner == (task + 1 if self.pruned else 0)
                if bool(trainable.all()):
                    continue
                mask = trainable.to(torch.uint8) if bool(trainable.any()) else None
            elif task == 0:
                continue  # biases and norms train during the first task only
            else:
                mask = None
            guards.append((param, mask, param.detach().clone()))
        self._guards, self._bound = guards, model

    # ------------------------------------------------------------------ state
    def task_conditioning(self) -> Optional[WeightMasks]:
        if not self.owners:
            return None
        return WeightMasks({n: o.clone() for n, o in self.owners.items()}, list(self.tasks_done))

    def state_dict(self) -> dict:
        meta, _ = conditioning_state(self.task_conditioning())
        return {**super().state_dict(), "hparams": dict(self.hparams), "tasks_done": list(self.tasks_done),
                "task": self.task, "pruned": self.pruned, **meta}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.tasks_done = [int(t) for t in state.get("tasks_done", [])]
        task = state.get("task")
        self.task = None if task is None else int(task)
        self.pruned = bool(state.get("pruned", False))
        self._release()

    def tensor_state_dict(self) -> dict[str, torch.Tensor]:
        return conditioning_state(self.task_conditioning())[1]

    def load_tensor_state_dict(self, tensors: Mapping[str, torch.Tensor]) -> None:
        owners = {k[len(_OWNER_KEY):]: v for k, v in tensors.items() if k.startswith(_OWNER_KEY)}
        if not owners and (self.tasks_done or self.task is not None):
            raise ConfigError(
                "The checkpoint's _cl_state.json says PackNet has trained tasks, but its _cl_state.safetensors holds "
                f'no "{_OWNER_KEY}*" owner maps: the two files do not belong together. Resume from an intact '
                "checkpoint or start a new run_id."
            )
        if any(v.dtype != torch.uint8 for v in owners.values()):
            raise ConfigError("PackNet's owner maps in _cl_state.safetensors must be uint8: the file is not PackNet's.")
        self.owners = dict(owners)
        self._release()

    def __repr__(self) -> str:
        h = self.hparams
        return (f"PackNet(prune_ratio={h['prune_ratio']}, retrain_fraction={h['retrain_fraction']:g}, "
                f"scope={h['prune_scope']})")

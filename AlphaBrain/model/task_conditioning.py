"""What a task-conditioned checkpoint holds besides its weights: how to turn the model into task k's model.

Methods that keep per-task parameters (PackNet's weight masks, one LoRA adapter per task) cannot be
evaluated as one model: the cell of task k must run with task k's mask or adapter, so evaluation
and the policy server need the task's identity. The algorithm that trains such a model (layer
`training`) describes its per-task parameters with one of the classes below, written into the
checkpoint next to its own state; `runs.load_run_model` reads it back (the `runs` layer never
imports an algorithm) and `select(model, position)` switches the loaded model to a task.

Stored in a checkpoint as
    _cl_state.json:         {"algorithm": {..., "task_conditioning": {"kind": ..., ...describe()}}}
    _cl_state.safetensors:  "conditioning.<...>" tensors (to_tensors())

Selecting a position the conditioning has no parameters for yet (a task not trained by this
checkpoint) leaves the model as it was last trained: that is what the checkpoint is for such a task.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Optional

import torch

from AlphaBrain.utils.errors import UserError, unknown_name

#: key of the conditioning descriptor inside the algorithm's JSON state
CONDITIONING_KEY = "task_conditioning"
#: prefix of its tensors inside the checkpoint's `_cl_state.safetensors`
TENSOR_PREFIX = "conditioning."
#: the descriptor's value for the model as last trained (no per-task parameters applied)
AS_TRAINED = -1


class TaskConditioning:
    """Per-task parameters of one checkpoint; `select(model, position)` makes `model` the model of that task."""

    kind: ClassVar[str] = "base"

    def __init__(self) -> None:
        self._base: Optional[dict[str, torch.Tensor]] = None  # the weights as trained, taken on the first select
        self.selected: int = AS_TRAINED

    @property
    def positions(self) -> list[int]:
        """Stream positions with their own parameters, ascending."""
        raise NotImplementedError

    def select(self, model: torch.nn.Module, position: int) -> int:
        """Put task `position`'s parameters into `model` (in place, no autograd); returns the position applied.

        A position without parameters of its own (a task this checkpoint has not trained) gives the model as
        trained, `AS_TRAINED`. Selecting the task already selected costs nothing.
        """
        applied = int(position) if int(position) in self.positions else AS_TRAINED
        if applied == self.selected:
            return applied
        params = dict(model.named_parameters())
        if self._base is None:
            self._base = {name: params[name].detach().clone() for name in self.parameter_names() if name in params}
        missing = [n for n in self.parameter_names() if n not in params]
        if missing:
            raise UserError(
                f"The checkpoint's {self.kind} refer to {len(missing)} parameter(s) the model does not have "
                f"(e.g. {missing[:2]}): it was written for another model or LoRA setting."
            )
        with torch.no_grad():
            for name in self.parameter_names():
                self._apply(name, params[name], self._base[name], applied)
        self.selected = applied
        return applied

    # ------------------------------------------------------------ per kind
    def parameter_names(self) -> list[str]:
        raise NotImplementedError

    def _apply(self, name: str, param: torch.nn.Parameter, base: torch.Tensor, position: int) -> None:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """JSON part: kind, positions and whatever else `from_checkpoint` needs."""
        return {"kind": self.kind, "positions": self.positions}

    def to_tensors(self) -> dict[str, torch.Tensor]:
        """Tensor part, keys under `TENSOR_PREFIX`."""
        raise NotImplementedError

    @classmethod
    def from_parts(cls, meta: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> "TaskConditioning":
        raise NotImplementedError


class WeightMasks(TaskConditioning):
    """PackNet-style ownership: `owners[name]` is 0 for a free weight and k + 1 for a weight task k kept.

    Task k's model uses the weights owned by tasks 0..k and zeros every other entry of a masked
    parameter (weights owned by later tasks, free ones). Parameters not in `owners` are shared as trained.
    """

    kind = "weight_masks"

    def __init__(self, owners: Mapping[str, torch.Tensor], positions: list[int]) -> None:
        super().__init__()
        for name, owner in owners.items():
            if owner.dtype != torch.uint8:
                raise ValueError(f"owner map of {name} must be uint8 (0 free, k+1 = task k), got {owner.dtype}")
        self.owners = {name: owner.detach().cpu() for name, owner in owners.items()}
        self._positions = sorted(int(p) for p in positions)

    @property
    def positions(self) -> list[int]:
        return self._positions

    def parameter_names(self) -> list[str]:
        return list(self.owners)

    def mask(self, name: str, position: int) -> torch.Tensor:
        """Boolean mask of the entries of `name` that task `position` uses."""
        owner = self.owners[name]
        return (owner >= 1) & (owner <= position + 1)

    def _apply(self, name: str, param: torch.nn.Parameter, base: torch.Tensor, position: int) -> None:
        if position == AS_TRAINED:
            param.copy_(base)
        else:
            param.copy_(torch.where(self.mask(name, position).to(base.device), base, torch.zeros_like(base)))

    def to_tensors(self) -> dict[str, torch.Tensor]:
        return {f"{TENSOR_PREFIX}owner.{name}": owner for name, owner in self.owners.items()}

    @classmethod
    def from_parts(cls, meta: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> "WeightMasks":
        key = f"{TENSOR_PREFIX}owner."
        return cls({k[len(key):]: v for k, v in tensors.items() if k.startswith(key)}, list(meta.get("positions", [])))


class ParameterSets(TaskConditioning):
    """One value per task for a set of parameters (per-task LoRA adapters and heads): `sets[k][name]`."""

    kind = "parameter_sets"

    def __init__(self, sets: Mapping[int, Mapping[str, torch.Tensor]]) -> None:
        super().__init__()
        self.sets = {int(k): {n: t.detach().cpu() for n, t in v.items()} for k, v in sorted(sets.items())}
        names = [sorted(v) for v in self.sets.values()]
        if any(n != names[0] for n in names):
            raise ValueError("every task's parameter set must name the same parameters")
        self._names = names[0] if names else []

    @property
    def positions(self) -> list[int]:
        return list(self.sets)

    def parameter_names(self) -> list[str]:
        return list(self._names)

    def _apply(self, name: str, param: torch.nn.Parameter, base: torch.Tensor, position: int) -> None:
        value = base if position == AS_TRAINED else self.sets[position][name]
        param.copy_(value.to(device=param.device, dtype=param.dtype))

    def to_tensors(self) -> dict[str, torch.Tensor]:
        return {f"{TENSOR_PREFIX}task{k}.{name}": t for k, params in self.sets.items() for name, t in params.items()}

    @classmethod
    def from_parts(cls, meta: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> "ParameterSets":
        sets: dict[int, dict[str, torch.Tensor]] = {int(k): {} for k in meta.get("positions", [])}
        for key, value in tensors.items():
            if not key.startswith(f"{TENSOR_PREFIX}task"):
                continue
            task, _, name = key[len(TENSOR_PREFIX) + 4:].partition(".")
            sets.setdefault(int(task), {})[name] = value
        return cls(sets)


CONDITIONING_KINDS: dict[str, type[TaskConditioning]] = {cls.kind: cls for cls in (WeightMasks, ParameterSets)}


def conditioning_state(conditioning: Optional[TaskConditioning]) -> tuple[dict, dict[str, torch.Tensor]]:
    """({CONDITIONING_KEY: descriptor}, tensors) to merge into an algorithm's JSON and tensor state."""
    if conditioning is None:
        return {}, {}
    return {CONDITIONING_KEY: conditioning.describe()}, conditioning.to_tensors()


def conditioning_from_checkpoint(
    algorithm_state: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]
) -> Optional[TaskConditioning]:
    """The conditioning a checkpoint's algorithm state describes, or None for a task-agnostic checkpoint."""
    meta = algorithm_state.get(CONDITIONING_KEY)
    if not meta:
        return None
    kind = meta.get("kind")
    if kind not in CONDITIONING_KINDS:
        raise unknown_name("task conditioning kind in the checkpoint's _cl_state.json", kind, CONDITIONING_KINDS)
    return CONDITIONING_KINDS[kind].from_parts(meta, tensors)

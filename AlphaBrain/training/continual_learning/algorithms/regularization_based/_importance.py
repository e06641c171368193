"""What EWC and SI share: which parameters are protected, importance/anchor pairs, and their penalty.

Both methods end a task with, for every trainable parameter θ, an importance Ω
(EWC: the diagonal Fisher; SI: the normalized path integral) and an anchor θ*
(the value at the end of the task), and penalize Σ Ω (θ − θ*)². The pieces here:

- `trainable_parameters(model)`: the protected set, the parameters with `requires_grad`
  (with LoRA: the adapters and the action head, never the frozen backbone);
- `ImportanceTerm`: one {name: Ω} / {name: θ*} pair, with flat safetensors keys;
- `QuadraticPenalty`: the terms bound once per task to the live parameter objects,
  so the per-step penalty is a loop over (θ, Ω, θ*) triples with no lookups by name.

Importances and anchors are float32 whatever the parameter dtype: a bf16 anchor
would round away exactly the small drifts the penalty is there to measure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import torch

from AlphaBrain.utils.errors import ConfigError


def trainable_parameters(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    """(name, parameter) for every parameter the optimizer trains, in module order."""
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


def snapshot(params: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    """Detached float32 copies (on each parameter's device)."""
    return [p.detach().to(torch.float32, copy=True) for p in params]


@dataclass
class ImportanceTerm:
    """Ω and θ* per parameter name (float32 tensors shaped like the parameters)."""

    importance: dict[str, torch.Tensor]
    anchor: dict[str, torch.Tensor]
    kind: str = "importance"  # the key word of Ω in the tensor file: "fisher" (EWC), "omega" (SI)

    def to_tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        """Flat keys `<prefix><kind>.<param name>`, e.g. `task0.fisher.action_model.net.0.weight`."""
        out = {f"{prefix}{self.kind}.{n}": t for n, t in self.importance.items()}
        out.update({f"{prefix}anchor.{n}": t for n, t in self.anchor.items()})
        return out

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, torch.Tensor], prefix: str, kind: str) -> "ImportanceTerm":
        imp_prefix, anchor_prefix = f"{prefix}{kind}.", f"{prefix}anchor."
        importance = {k[len(imp_prefix):]: v.to(torch.float32) for k, v in tensors.items() if k.startswith(imp_prefix)}
        anchor = {k[len(anchor_prefix):]: v.to(torch.float32) for k, v in tensors.items() if k.startswith(anchor_prefix)}
        if not importance or importance.keys() != anchor.keys():
            raise ConfigError(
                f'The checkpoint\'s CL tensors have no complete "{prefix}{kind}.*" / "{prefix}anchor.*" set '
                f"({len(importance)} {kind} and {len(anchor)} anchor tensors). The _cl_state.safetensors file does "
                "not match its _cl_state.json: resume from an intact checkpoint or start a new run_id."
            )
        return cls(importance, anchor, kind)


class QuadraticPenalty:
    """Σ over terms and parameters of Σ Ω (θ − θ*)², bound to a model's parameter objects."""

    def __init__(self) -> None:
        self.model: torch.nn.Module | None = None
        self.triples: list[tuple[torch.nn.Parameter, torch.Tensor, torch.Tensor]] = []

    def bind(self, model: torch.nn.Module, terms: list[ImportanceTerm]) -> None:
        """Resolve names once; moves Ω and θ* onto each parameter's device (in place in the terms)."""
        params = dict(trainable_parameters(model))
        triples = []
        for term in terms:
            missing = sorted(set(term.importance) - set(params))
            extra = sorted(set(params) - set(term.importance))
            if missing or extra:
                detail = (f"{len(missing)} stored but not trainable now (e.g. {missing[0]})" if missing else "") + \
                         ("; " if missing and extra else "") + \
                         (f"{len(extra)} trainable now but not stored (e.g. {extra[0]})" if extra else "")
                raise ConfigError(
                    f"The importance weights were computed for other trainable parameters than this model has: {detail}. "
                    "Resume with the run's own model, LoRA and freezing settings, or start a new run_id."
                )
            for name, p in params.items():
                omega, anchor = term.importance[name], term.anchor[name]
                if omega.shape != p.shape or anchor.shape != p.shape:
                    raise ConfigError(
                        f"Stored importance for {name} has shape {tuple(omega.shape)} but the parameter has "
                        f"{tuple(p.shape)}: the model changed since the checkpoint. Resume with the run's own settings."
                    )
                term.importance[name] = omega = omega.to(p.device, torch.float32)
                term.anchor[name] = anchor = anchor.to(p.device, torch.float32)
                triples.append((p, omega, anchor))
        self.model, self.triples = model, triples

    def clear(self) -> None:
        self.model, self.triples = None, []

    def __call__(self) -> torch.Tensor | None:
        if not self.triples:
            return None
        # One reduction per parameter, summed at the end; `.float()` is free for float32 parameters.
        return torch.stack([(omega * (p.float() - anchor).square()).sum() for p, omega, anchor in self.triples]).sum()


"""Merge rules for task vectors (τ = θ_end − θ_base), as pure functions on float32 tensors.

- average: the element-wise mean of τ_0..τ_k (task arithmetic, Ilharco et al. 2023, with λ on top);
- ties: TIES-Merging (Yadav et al. 2023): trim each τ to its largest-magnitude entries, elect a sign
  per entry (the sign of the sum of the trimmed values), and average only the entries that agree with
  it (the "disjoint mean"; 0 where none agree).

Both means are running means, m ← m + (τ − m) / n: merging identical task vectors then returns that
vector bit for bit (a sum followed by a division would round), so merging one task, or several that
learned the same thing, leaves the weights exactly where training put them.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch

MERGE_RULES = ("average", "ties")


def average(taus: Sequence[torch.Tensor]) -> torch.Tensor:
    """Element-wise mean of the task vectors of one parameter."""
    merged = taus[0].clone()
    for n, tau in enumerate(taus[1:], start=2):
        merged.add_((tau - merged) / n)
    return merged


def trim(tau: torch.Tensor, density: float) -> torch.Tensor:
    """`tau` with all but its ceil(density · numel) largest-magnitude entries set to 0.

    Entries tied with the smallest kept magnitude are all kept (a threshold, not an arg-sort): the
    result does not depend on a sort's tie order.
    """
    n = tau.numel()
    keep = min(n, math.ceil(density * n))
    if keep >= n:
        return tau.clone()
    magnitude = tau.abs().flatten()
    threshold = magnitude.kthvalue(n - keep + 1).values
    return torch.where(tau.abs() >= threshold, tau, torch.zeros_like(tau))


def elect_sign(trimmed: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per entry +1, −1 or 0: the sign of the sum of the trimmed task vectors."""
    return torch.sign(torch.stack(list(trimmed)).sum(dim=0))


def disjoint_mean(trimmed: Sequence[torch.Tensor], sign: torch.Tensor) -> torch.Tensor:
    """Per entry, the mean of the non-zero trimmed values whose sign is `sign`; 0 where there is none."""
    merged = torch.zeros_like(trimmed[0])
    count = torch.zeros_like(trimmed[0])
    for tau in trimmed:
        agree = (torch.sign(tau) == sign) & (tau != 0)
        count.add_(agree.to(count.dtype))
        step = (tau - merged) / count.clamp(min=1)
        merged = torch.where(agree, merged + step, merged)
    return merged


def ties(taus: Sequence[torch.Tensor], density: float) -> torch.Tensor:
    """TIES-Merging of the task vectors of one parameter: trim, elect sign, disjoint mean."""
    trimmed = [trim(tau, density) for tau in taus]
    return disjoint_mean(trimmed, elect_sign(trimmed))


def merge(taus: Sequence[torch.Tensor], rule: str, density: float = 1.0) -> torch.Tensor:
    """The merged task vector of one parameter under `rule` (one of MERGE_RULES)."""
    if not taus:
        raise ValueError("merge needs at least one task vector")
    if rule == "average":
        return average(taus)
    if rule == "ties":
        return ties(taus, density)
    raise ValueError(f"unknown merge rule {rule!r}; one of {', '.join(MERGE_RULES)}")


def merged_parameters(
    base: Mapping[str, torch.Tensor],
    task_vectors: Sequence[Mapping[str, torch.Tensor]],
    rule: str,
    scaling: float = 1.0,
    density: float = 1.0,
) -> dict[str, torch.Tensor]:
    """{name: θ_base + scaling · merge(τ_0[name], ..., τ_k[name])} for every parameter of `base`."""
    return {
        name: torch.add(theta, merge([tv[name] for tv in task_vectors], rule, density), alpha=scaling)
        for name, theta in base.items()
    }

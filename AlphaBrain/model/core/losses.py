"""Losses on action chunks, shared by the regression heads and the flow-matching head."""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: the `loss` choices of the regression heads' `framework.action_model` blocks.
CHUNK_LOSSES: tuple[str, ...] = ("l1", "mse", "huber")


def masked_chunk_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """Per-sample loss [B]: the elementwise loss averaged over the valid (unmasked) steps and all action dims.

    A sample with no valid step contributes 0.
    """
    if kind == "l1":
        err = (pred - target).abs()
    elif kind == "mse":
        err = (pred - target).square()
    elif kind == "huber":
        err = F.smooth_l1_loss(pred, target, reduction="none", beta=1.0)
    else:  # pragma: no cover - configs validate the choice
        raise ValueError(f"unknown loss {kind!r}")
    weights = mask.to(err.dtype).unsqueeze(-1)  # [B, H, 1]
    total = (err * weights).sum(dim=(1, 2))
    count = weights.sum(dim=(1, 2)) * err.shape[-1]
    return total / count.clamp_min(1.0)

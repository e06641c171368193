"""Output-matching helpers shared by DER++ (stored outputs) and LwF (a frozen teacher).

Targets are computed in eval mode without gradients (no augmentation, no
dropout: the same sample always gives the same target); the student side is
computed by the caller in the current (training) mode with autograd.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Eval mode for the block, then back to whatever mode the model was in."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def autocast_of(accelerator: Any):
    """The run's autocast context factory (mixed precision), or a no-op without an accelerator."""
    autocast = getattr(accelerator, "autocast", None)
    return autocast if callable(autocast) else contextlib.nullcontext


@torch.no_grad()
def target_outputs(model: torch.nn.Module, samples: Sequence[dict], batch_size: int, accelerator: Any = None) -> torch.Tensor:
    """`model.action_outputs` of `samples` in eval mode, in chunks of `batch_size`: float32 on the CPU, [N, H, A]."""
    chunks = []
    with eval_mode(model), autocast_of(accelerator)():
        for start in range(0, len(samples), batch_size):
            chunks.append(model.action_outputs(samples[start:start + batch_size]).detach().float().cpu())
    return torch.cat(chunks)


def output_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared difference over batch, horizon and action dims, in float32 (bf16 outputs lose too much)."""
    return F.mse_loss(pred.float(), target.to(pred.device, torch.float32))

"""Image augmentation used during training only."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift(images: torch.Tensor, pad: int) -> torch.Tensor:
    """Random-shift augmentation (DrQ): replicate-pad by `pad` pixels, then crop back at a random offset.

    images: [N, C, H, W]. Each image gets its own integer shift in [-pad, pad]^2,
    drawn from torch's global RNG (so a reseeded run replays the same shifts).
    """
    if pad <= 0:
        return images
    n, _, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), device=images.device)
    rows = offsets[:, 0:1] + torch.arange(h, device=images.device)  # [N, H]
    cols = offsets[:, 1:2] + torch.arange(w, device=images.device)  # [N, W]
    batch_index = torch.arange(n, device=images.device)[:, None, None]
    # Advanced indexing gives [N, H, W, C]; move channels back.
    out = padded.permute(0, 2, 3, 1)[batch_index, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()

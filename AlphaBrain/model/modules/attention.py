"""Multi-head attention shared by the Q-Former and the flow-matching DiT.

Built on `F.scaled_dot_product_attention` (fused kernel) with a boolean key
mask (True = may attend). Keys and values may come from another sequence of
width `kv_dim`, and one projected context can serve `repeats` consecutive
queries per sample (the flow-matching head evaluates R noise draws against one
VLM sequence): the keys/values are projected once, then repeated.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    """x [N, Lq, dim] attends to ctx [N / repeats, Lk, kv_dim] (self-attention: ctx = x)."""

    def __init__(self, dim: int, heads: int, kv_dim: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim if kv_dim is None else kv_dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = dropout

    def _split(self, y: torch.Tensor, n: int) -> torch.Tensor:  # [N, L, dim] -> [N, heads, L, dim/heads]
        return y.view(n, -1, self.heads, y.shape[-1] // self.heads).transpose(1, 2)

    def forward(
        self, x: torch.Tensor, ctx: torch.Tensor, ctx_mask: torch.Tensor | None = None, repeats: int = 1
    ) -> torch.Tensor:
        n, lq, d = x.shape
        k, v = self.kv(ctx).chunk(2, dim=-1)  # projected once per context, then shared
        if repeats > 1:
            k, v = k.repeat_interleave(repeats, 0), v.repeat_interleave(repeats, 0)
            ctx_mask = ctx_mask.repeat_interleave(repeats, 0) if ctx_mask is not None else None
        mask = ctx_mask[:, None, None, :] if ctx_mask is not None else None  # True = attend
        y = F.scaled_dot_product_attention(
            self._split(self.q(x), n), self._split(k, n), self._split(v, n),
            attn_mask=mask, dropout_p=self.dropout if self.training else 0.0,
        )
        return self.out(y.transpose(1, 2).reshape(n, lq, d))

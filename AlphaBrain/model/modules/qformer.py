"""Q-Former: a fixed number of learned queries that read a variable-length VLM sequence.

    VLM hidden [B, L, D_vlm] + mask [B, L]
        --LayerNorm + Linear-->  memory [B, L, dim]          (padded positions zeroed)
    queries [num_queries, dim] (learned, shared by every sample)
        --N x (pre-LN self-attention among queries,
               pre-LN cross-attention to the memory with the key padding mask,
               pre-LN MLP), each with a residual-->  LayerNorm --> [B, num_queries, dim]

The head after it sees a fixed-size summary whatever the prompt length (number
of cameras, instruction length), which is what lets a small action head sit on
a 2048-wide, several-hundred-token VLM output.

Padding never leaks in: padded keys get no attention weight, and their
projected values are zeroed before the attention, so whatever the VLM wrote at
padded positions (even inf/NaN in a bf16 overflow) leaves the output bitwise
unchanged. A sample whose mask is all False attends to zeros instead of
producing NaN.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from AlphaBrain.model.modules.attention import Attention


class QFormerBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.norm_self = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, num_heads, dropout=dropout)
        self.norm_cross = nn.LayerNorm(dim)
        self.norm_memory = nn.LayerNorm(dim)
        self.cross_attn = Attention(dim, num_heads, dropout=dropout)
        self.norm_mlp = nn.LayerNorm(dim)
        hidden = int(round(dim * mlp_ratio))
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))

    def forward(self, q: torch.Tensor, memory: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        h = self.norm_self(q)
        q = q + self.self_attn(h, h)
        # norm_memory is per token, so padded positions stay independent of real ones; the
        # caller zeroes them again after it (LayerNorm of a zero row is its bias, not zero).
        mem = self.norm_memory(memory).masked_fill(~key_mask[..., None], 0.0)
        q = q + self.cross_attn(self.norm_cross(q), mem, key_mask)
        return q + self.mlp(self.norm_mlp(q))


class QFormer(nn.Module):
    """[B, L, vlm_dim] hidden states + [B, L] bool mask -> [B, num_queries, dim]."""

    def __init__(
        self,
        vlm_dim: int,
        dim: int,
        num_queries: int,
        num_layers: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"Q-Former dim {dim} is not a multiple of num_heads {num_heads}")
        self.dim = dim
        self.num_queries = num_queries
        # The VLM's last hidden states have a large, model-specific scale; normalize before projecting.
        self.in_norm = nn.LayerNorm(vlm_dim)
        self.in_proj = nn.Linear(vlm_dim, dim)
        self.queries = nn.Parameter(torch.randn(num_queries, dim) * 0.02)
        self.blocks = nn.ModuleList(QFormerBlock(dim, num_heads, mlp_ratio, dropout) for _ in range(num_layers))
        self.out_norm = nn.LayerNorm(dim)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if hidden.dim() != 3 or mask.shape != hidden.shape[:2]:
            raise ValueError(f"expected hidden [B, L, D] and mask [B, L], got {tuple(hidden.shape)} and {tuple(mask.shape)}")
        key_mask = mask.to(torch.bool)
        # A sample with no valid token would softmax over nothing (NaN): let it attend to zeros.
        key_mask = key_mask | ~key_mask.any(dim=1, keepdim=True)
        # Hidden states may arrive in bf16 from the backbone; the Q-Former runs in its own dtype.
        x = hidden.to(self.in_proj.weight.dtype).masked_fill(~mask.to(torch.bool)[..., None], 0.0)
        memory = self.in_proj(self.in_norm(x)).masked_fill(~key_mask[..., None], 0.0)
        q = self.queries.unsqueeze(0).expand(hidden.shape[0], -1, -1)
        for block in self.blocks:
            q = block(q, memory, key_mask)
        return self.out_norm(q)

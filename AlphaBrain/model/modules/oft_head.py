"""The OpenVLA-OFT-style action head: learned action queries read out through the VLM, decoded in parallel.

    queries [Q, D_vlm] --(appended to the prompt, run through the VLM)--> last hidden states [B, Q, D_vlm]
        --LayerNorm + Linear--> [B, Q, hidden] + state projection (broadcast over the queries)
        --residual MLP blocks (per query)--> readout --> action chunk [B, horizon, action_dim]

Readout: with one query per chunk step (`num_action_queries` = 0, OFT's
layout) query t decodes step t with a shared Linear; with K queries they are
concatenated and one Linear decodes the whole chunk. Either way the chunk comes
out in one pass (no autoregression), trained with L1 (OFT) on the normalized
actions. Hidden states may arrive in bf16; the head computes in its own dtype.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class _ResidualMLP(nn.Module):
    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, dim)
        self.act = nn.GELU()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop(self.act(self.fc(self.norm(x))))


class OFTActionHead(nn.Module):
    """Action queries + parallel MLP decoder (see the module docstring)."""

    def __init__(
        self,
        vlm_dim: int,
        horizon: int,
        action_dim: int,
        state_dim: int,
        hidden_dim: int,
        num_layers: int,
        num_queries: int = 0,
        dropout: float = 0.0,
        query_init_std: float = 0.02,
    ) -> None:
        super().__init__()
        self.per_step = num_queries == 0
        self.num_queries = horizon if self.per_step else num_queries
        self.horizon, self.action_dim = horizon, action_dim
        # Queries live in the VLM's input-embedding space; they belong to the head (its learning rate, its checkpoint).
        self.queries = nn.Parameter(torch.randn(self.num_queries, vlm_dim) * query_init_std)
        self.in_proj = nn.Sequential(nn.LayerNorm(vlm_dim), nn.Linear(vlm_dim, hidden_dim))
        # Proprioception joins after the VLM (the backbone sees images and text only).
        self.state_proj = nn.Linear(state_dim, hidden_dim) if state_dim > 0 else None
        self.blocks = nn.Sequential(*[_ResidualMLP(hidden_dim, dropout) for _ in range(num_layers)])
        self.out_norm = nn.LayerNorm(hidden_dim)
        if self.per_step:
            self.readout = nn.Linear(hidden_dim, action_dim)
        else:
            self.readout = nn.Linear(self.num_queries * hidden_dim, horizon * action_dim)

    def query_embeds(self, batch: int, dtype: torch.dtype | None = None) -> torch.Tensor:
        """[batch, Q, D_vlm]: what the backbone appends to every prompt."""
        q = self.queries.unsqueeze(0).expand(batch, -1, -1)
        return q if dtype is None else q.to(dtype)

    def forward(self, query_hidden: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """query_hidden [B, Q, D_vlm] (the VLM's last hidden states at the queries), state [B, state_dim]."""
        dtype = self.in_proj[1].weight.dtype
        x = self.in_proj(query_hidden.to(dtype))
        if self.state_proj is not None:
            x = x + self.state_proj(state.to(dtype)).unsqueeze(1)
        x = self.out_norm(self.blocks(x))
        if self.per_step:
            return self.readout(x)  # [B, horizon, action_dim]
        return self.readout(x.flatten(1)).view(-1, self.horizon, self.action_dim)

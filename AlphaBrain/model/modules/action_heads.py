"""Action heads: features -> a whole action chunk at once."""

from __future__ import annotations

import torch
import torch.nn as nn


class MLPChunkHead(nn.Module):
    """[B, in_dim] -> [B, horizon, action_dim] with an MLP (regression head, OFT-style)."""

    def __init__(
        self, in_dim: int, hidden_dim: int, num_layers: int, horizon: int, action_dim: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        dim = in_dim
        for _ in range(num_layers):
            layers += [nn.Linear(dim, hidden_dim), nn.LayerNorm(hidden_dim), nn.GELU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            dim = hidden_dim
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(dim, horizon * action_dim)
        self.horizon = horizon
        self.action_dim = action_dim

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(features)).view(-1, self.horizon, self.action_dim)

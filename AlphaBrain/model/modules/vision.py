"""A small strided CNN image encoder with optional FiLM conditioning."""

from __future__ import annotations

import torch
import torch.nn as nn


def _conv_out(size: int, stride: int) -> int:
    # 3x3 convolution, padding 1.
    return (size + 2 - 3) // stride + 1


class FiLMConvEncoder(nn.Module):
    """[N, 3, H, W] images (+ optional [N, cond_dim] condition) -> [N, out_dim] features.

    Each entry of `channels` is one 3x3 conv + GroupNorm + ReLU; all but the last
    halve the resolution. When `cond_dim > 0` the output of every layer after the
    first is modulated by the condition (FiLM: x * (1 + gamma) + beta), which lets
    the instruction decide what the image features attend to. A 1x1 conv reduces
    the last map to `feature_channels`, which is flattened (keeping where things
    are, which pooling would lose) and projected to `out_dim`.
    """

    def __init__(
        self,
        image_size: tuple[int, int],
        channels: list[int],
        groups: int,
        feature_channels: int,
        out_dim: int,
        cond_dim: int = 0,
    ) -> None:
        super().__init__()
        layers = []
        in_ch = 3
        h, w = image_size
        for i, ch in enumerate(channels):
            stride = 2 if i < len(channels) - 1 else 1
            layers.append(
                nn.Sequential(
                    nn.Conv2d(in_ch, ch, 3, stride=stride, padding=1),
                    nn.GroupNorm(min(groups, ch), ch),
                )
            )
            h, w = _conv_out(h, stride), _conv_out(w, stride)
            in_ch = ch
        self.layers = nn.ModuleList(layers)
        self.film_channels = list(channels[1:]) if cond_dim > 0 else []
        self.film = nn.Linear(cond_dim, 2 * sum(self.film_channels)) if self.film_channels else None
        self.reduce = nn.Sequential(nn.Conv2d(in_ch, feature_channels, 1), nn.ReLU())
        self.proj = nn.Sequential(nn.Linear(feature_channels * h * w, out_dim), nn.LayerNorm(out_dim), nn.ReLU())
        self.out_dim = out_dim

    def forward(self, images: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        x = images - 0.5
        films: list[torch.Tensor] = []
        if self.film is not None:
            if cond is None:
                raise ValueError("this encoder was built with FiLM conditioning; pass `cond`")
            films = list(self.film(cond).split([2 * c for c in self.film_channels], dim=-1))
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i > 0 and films:
                gamma, beta = films[i - 1].unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
                x = x * (1.0 + gamma) + beta
            x = torch.relu(x)
        x = self.reduce(x)
        return self.proj(x.flatten(1))

"""TinyVLA: a small vision-language-action policy that trains on a laptop CPU in minutes.

    every camera image --(shared FiLM CNN)--> per-camera features --.
    instruction --(hashed n-grams -> EmbeddingBag -> MLP)--> text ---+--> MLP --> action chunk [H, A]
    proprio state --(MLP)--> state features ----------------------'

The text embedding also FiLM-modulates the image features, so two instructions
in the same scene (open / close the drawer) can look at different things.
Loss: L1 (default) on the normalized chunk, averaged over the valid steps of
each sample (`action_mask`). Random-shift augmentation runs in training mode only.

YAML (`configs/continual_learning/models/tiny.yaml`):

    framework:
      name: TinyVLA
      tiny: {image_size, vision_channels, vision_groups, vision_feature_channels, vision_dim,
             film, text_buckets, text_embed_dim, text_dim, text_ngrams, state_dim_hidden, random_shift}
      action_model: {action_horizon, hidden_dim, num_layers, dropout, loss}

Top-level children (learning-rate keys): vision, language, state_encoder, action_model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn as nn

from AlphaBrain.dataloader.spec import DataSpec
from AlphaBrain.model.framework.base import BaseVLAPolicy, PolicyBatch, masked_chunk_loss
from AlphaBrain.model.framework.config import BlockConfig, to_plain
from AlphaBrain.model.modules.action_heads import MLPChunkHead
from AlphaBrain.model.modules.augment import random_shift
from AlphaBrain.model.modules.language import HashedTextEncoder
from AlphaBrain.model.modules.vision import FiLMConvEncoder
from AlphaBrain.model.registry import register_framework
from AlphaBrain.utils.errors import ConfigError


@dataclass
class TinyVLAConfig(BlockConfig):
    """The `framework.tiny` block."""

    yaml_path: ClassVar[str] = "framework.tiny"

    image_size: int = 64
    vision_channels: list[int] = field(default_factory=lambda: [16, 32, 64, 64])
    vision_groups: int = 8
    vision_feature_channels: int = 32
    vision_dim: int = 256
    film: bool = True
    text_buckets: int = 4096
    text_embed_dim: int = 64
    text_dim: int = 128
    text_ngrams: int = 2
    state_dim_hidden: int = 64
    random_shift: int = 4

    def __post_init__(self) -> None:
        self.check_int("image_size", 16, 512)
        self.check_int_list("vision_channels", 4, 1024, min_len=1, max_len=6)
        self.check_int("vision_groups", 1, 64)
        for ch in self.vision_channels:
            groups = min(self.vision_groups, ch)
            if ch % groups:
                raise ConfigError(
                    f"framework.tiny.vision_groups = {self.vision_groups} does not divide the channel count "
                    f"{ch} in framework.tiny.vision_channels = {self.vision_channels}; GroupNorm needs "
                    f"every channel count to be a multiple of it."
                )
        self.check_int("vision_feature_channels", 1, 1024)
        self.check_int("vision_dim", 8, 4096)
        self.check_bool("film")
        self.check_int("text_buckets", 16, 1_000_000)
        self.check_int("text_embed_dim", 4, 1024)
        self.check_int("text_dim", 4, 2048)
        self.check_int("text_ngrams", 1, 3)
        self.check_int("state_dim_hidden", 4, 2048)
        self.check_int("random_shift", 0, self.image_size // 4)


@dataclass
class TinyActionModelConfig(BlockConfig):
    """The `framework.action_model` block of TinyVLA."""

    yaml_path: ClassVar[str] = "framework.action_model"

    action_horizon: int = 8
    hidden_dim: int = 256
    num_layers: int = 2
    dropout: float = 0.0
    loss: str = "l1"

    LOSSES: ClassVar[tuple[str, ...]] = ("l1", "mse", "huber")

    def __post_init__(self) -> None:
        self.check_int("action_horizon", 1, 256)
        self.check_int("hidden_dim", 8, 8192)
        self.check_int("num_layers", 1, 8)
        self.check_float("dropout", 0.0, 0.9)
        self.check_choice("loss", self.LOSSES)


class _StateEncoder(nn.Module):
    def __init__(self, state_dim: int, hidden: int) -> None:
        super().__init__()
        # A dataset without proprioception (state_dim 0) contributes no features.
        self.out_dim = hidden if state_dim > 0 else 0
        self.mlp = (
            nn.Sequential(nn.Linear(state_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
            if state_dim > 0
            else None
        )

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.mlp(state) if self.mlp is not None else state


@register_framework("TinyVLA", aliases=("tiny",))
class TinyVLA(BaseVLAPolicy):
    """A ~1.1 M-parameter CNN VLA policy for CPU training (see the module docstring)."""

    def __init__(
        self,
        data_spec: DataSpec,
        tiny: TinyVLAConfig | None = None,
        action_model: TinyActionModelConfig | None = None,
    ) -> None:
        tiny = tiny if tiny is not None else TinyVLAConfig()
        action_model = action_model if action_model is not None else TinyActionModelConfig(
            action_horizon=data_spec.action_horizon
        )
        self.check_action_horizon(action_model.action_horizon, data_spec)
        super().__init__(data_spec, action_horizon=action_model.action_horizon)
        self.tiny_config = tiny
        self.action_config = action_model
        self.image_size = (tiny.image_size, tiny.image_size)

        self.language = HashedTextEncoder(tiny.text_buckets, tiny.text_embed_dim, tiny.text_dim, tiny.text_ngrams)
        self.vision = FiLMConvEncoder(
            self.image_size,
            tiny.vision_channels,
            tiny.vision_groups,
            tiny.vision_feature_channels,
            tiny.vision_dim,
            cond_dim=tiny.text_dim if tiny.film else 0,
        )
        self.state_encoder = _StateEncoder(data_spec.state_dim, tiny.state_dim_hidden)
        fused = self.num_cameras * tiny.vision_dim + tiny.text_dim + self.state_encoder.out_dim
        self.action_model = MLPChunkHead(
            fused,
            action_model.hidden_dim,
            action_model.num_layers,
            self.action_horizon,
            self.action_dim,
            action_model.dropout,
        )

    @classmethod
    def from_config(cls, cfg: Any, data_spec: DataSpec) -> "TinyVLA":
        block = to_plain(cfg["framework"]) or {}
        tiny = TinyVLAConfig.from_block(block.get("tiny"))
        head = to_plain(block.get("action_model")) or {}
        if isinstance(head, Mapping) and "action_horizon" not in head:
            # Unset: take the dataset's chunk length rather than a default that may disagree with it.
            head = {**head, "action_horizon": data_spec.action_horizon}
        action_model = TinyActionModelConfig.from_block(head)
        return cls(data_spec, tiny=tiny, action_model=action_model)

    # ---- computation ------------------------------------------------------------------------------

    def _encode(self, batch: PolicyBatch) -> torch.Tensor:
        b, n_cam = batch.images.shape[:2]
        text = self.language(batch.lang)  # [B, text_dim]
        images = batch.images.flatten(0, 1)  # [B * cams, 3, H, W]
        if self.training:
            images = random_shift(images, self.tiny_config.random_shift)
        cond = text.repeat_interleave(n_cam, dim=0) if self.tiny_config.film else None
        vis = self.vision(images, cond).view(b, n_cam * self.vision.out_dim)
        return torch.cat([vis, text, self.state_encoder(batch.state)], dim=-1)

    def per_sample_action_loss(self, examples: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        batch = self.collate(examples, require_action=True, image_size=self.image_size)
        pred = self.action_model(self._encode(batch))
        return masked_chunk_loss(pred, batch.action, batch.action_mask, self.action_config.loss)

    def _predict(self, examples: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        batch = self.collate(examples, require_action=False, image_size=self.image_size)
        return self.action_model(self._encode(batch))

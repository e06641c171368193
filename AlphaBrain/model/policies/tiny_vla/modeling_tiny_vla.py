"""TinyVLA: a small vision-language-action policy that trains on a laptop CPU in minutes.

    every camera image --(shared FiLM CNN)--> per-camera features --.
    instruction --(hashed n-grams -> EmbeddingBag -> MLP)--> text ---+--> MLP --> action chunk [H, A]
    proprio state --(MLP)--> state features ----------------------'

The text embedding also FiLM-modulates the image features, so two instructions
in the same scene (open / close the drawer) can look at different things.
Head (`framework.action_model.head`): `mlp` (default) regresses the chunk, loss L1 (default) on
the normalized chunk averaged over the valid steps of each sample (`action_mask`); `flow` learns
the distribution of chunks by flow matching (modules/flow_chunk_head.py) on the same features.
Random-shift augmentation runs in training mode only.

YAML (`configs/continual_learning/models/tiny.yaml`): `framework.tiny` and
`framework.action_model`, listed in configuration_tiny_vla.py.

Top-level children (learning-rate keys): vision, language, state_encoder, action_model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn

from AlphaBrain.dataloader.spec import DataSpec
from AlphaBrain.model.core.batch import PolicyBatch
from AlphaBrain.model.core.config import to_plain
from AlphaBrain.model.modules.action_heads import MLPChunkHead
from AlphaBrain.model.modules.augment import random_shift
from AlphaBrain.model.modules.flow_chunk_head import FlowChunkHead
from AlphaBrain.model.modules.language import HashedTextEncoder
from AlphaBrain.model.modules.vision import FiLMConvEncoder
from AlphaBrain.model.policies.common.base import ChunkRegressionPolicy
from AlphaBrain.model.policies.tiny_vla.configuration_tiny_vla import TinyActionModelConfig, TinyVLAConfig


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


class TinyVLA(ChunkRegressionPolicy):
    """A ~1.1 M-parameter CNN VLA policy for CPU training (see the module docstring)."""

    def __init__(
        self,
        data_spec: DataSpec,
        tiny: TinyVLAConfig | None = None,
        action_model: TinyActionModelConfig | None = None,
    ) -> None:
        tiny = tiny if tiny is not None else TinyVLAConfig()
        action_model = TinyActionModelConfig.for_horizon(action_model, data_spec.action_horizon)
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
        head_args = (
            fused, action_model.hidden_dim, action_model.num_layers, self.action_horizon, self.action_dim, action_model.dropout,
        )
        self.action_model: MLPChunkHead | FlowChunkHead
        if action_model.head == "flow":
            self.action_model = FlowChunkHead(
                *head_args,
                steps=action_model.flow_steps,
                repeats=action_model.flow_repeats,
                noise_seed=action_model.flow_noise_seed,
            )
        else:
            self.action_model = MLPChunkHead(*head_args)

    @classmethod
    def from_config(cls, cfg: Any, data_spec: DataSpec) -> "TinyVLA":
        block = to_plain(cfg["framework"]) or {}
        tiny = TinyVLAConfig.from_block(block.get("tiny"))
        return cls(data_spec, tiny=tiny, action_model=cls.head_config(block, data_spec, TinyActionModelConfig))

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

    def _features(self, examples: Sequence[Mapping[str, Any]], *, require_action: bool) -> tuple[PolicyBatch, torch.Tensor]:
        batch = self.collate(examples, require_action=require_action, image_size=self.image_size)
        return batch, self._encode(batch)

    def _chunk(self, examples: Sequence[Mapping[str, Any]], *, require_action: bool) -> tuple[PolicyBatch, torch.Tensor]:
        batch, features = self._features(examples, require_action=require_action)
        if isinstance(self.action_model, FlowChunkHead):
            return batch, self.action_model.sample(features)
        return batch, self.action_model(features)

    # The flow head is not a regression: its loss and distillation output are its own.

    def per_sample_action_loss(self, examples: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        if not isinstance(self.action_model, FlowChunkHead):
            return super().per_sample_action_loss(examples)
        batch, features = self._features(examples, require_action=True)
        return self.action_model.loss(features, batch.action, batch.action_mask)

    def action_outputs(self, examples: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        if not isinstance(self.action_model, FlowChunkHead):
            return super().action_outputs(examples)
        return self.action_model.distill_output(self._features(examples, require_action=False)[1])

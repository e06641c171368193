"""Shared code of LlamaOFT and PaliGemmaOFT: a decoder VLM + the OFT action head (parallel decoding, L1).

    images, instruction --> prompt tokens --.
    action queries (learned, in the head) ---+--> VLM --> hidden states at the queries
    proprio state -----------------------------------------------> OFTActionHead --> chunk [B, H, A]

The two frameworks differ only in their backbone class (`backbone_cls`) and
YAML block (`framework.mllama` / `framework.paligemma`). YAML:

    framework:
      name: LlamaOFT | PaliGemmaOFT
      mllama | paligemma: {base_vlm, init, size, attn_implementation, gradient_checkpointing, dtype, max_text_tokens}
      action_model: {action_horizon, num_action_queries, hidden_dim, num_layers, dropout, loss, query_init_std}

Top-level children (learning-rate keys): vlm, action_model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from AlphaBrain.dataloader.spec import DataSpec
from AlphaBrain.model.framework.base import masked_chunk_loss
from AlphaBrain.model.framework.config import BlockConfig
from AlphaBrain.model.framework.vlm_policy import VLMPolicy
from AlphaBrain.model.modules.oft_head import OFTActionHead


@dataclass
class OFTActionModelConfig(BlockConfig):
    """The `framework.action_model` block of the OFT frameworks."""

    yaml_path: ClassVar[str] = "framework.action_model"

    action_horizon: int = 8
    num_action_queries: int = 0  # 0 = one query per chunk step (OFT); K = K queries decoded jointly
    hidden_dim: int = 1024
    num_layers: int = 2
    dropout: float = 0.0
    loss: str = "l1"
    query_init_std: float = 0.02

    LOSSES: ClassVar[tuple[str, ...]] = ("l1", "mse", "huber")

    def __post_init__(self) -> None:
        self.check_int("action_horizon", 1, 256)
        self.check_int("num_action_queries", 0, 256)
        self.check_int("hidden_dim", 8, 16384)
        self.check_int("num_layers", 0, 16)
        self.check_float("dropout", 0.0, 0.9)
        self.check_choice("loss", self.LOSSES)
        self.check_float("query_init_std", 0.0, 10.0, low_inclusive=False)


class OFTPolicy(VLMPolicy):
    """Base of LlamaOFT / PaliGemmaOFT; subclasses set `backbone_cls`."""

    needs_pretrained_weights: ClassVar[bool] = True

    def __init__(self, data_spec: DataSpec, vlm, action_model: OFTActionModelConfig | None = None) -> None:
        action_model = action_model or OFTActionModelConfig(action_horizon=data_spec.action_horizon)
        super().__init__(data_spec, vlm, action_model.action_horizon)
        self.action_config = action_model
        self.action_model = OFTActionHead(
            vlm.hidden_size,
            self.action_horizon,
            self.action_dim,
            self.state_dim,
            action_model.hidden_dim,
            action_model.num_layers,
            num_queries=action_model.num_action_queries,
            dropout=action_model.dropout,
            query_init_std=action_model.query_init_std,
        )

    @classmethod
    def from_config(cls, cfg: Any, data_spec: DataSpec) -> "OFTPolicy":
        block = cls.framework_block(cfg)
        head = cls.head_config(block, data_spec, OFTActionModelConfig)
        return cls(data_spec, cls.build_backbone(block), head)

    # ---- computation -----------------------------------------------------------------------------

    def _chunk(self, examples: Sequence[Mapping[str, Any]], *, require_action: bool):
        batch = self.collate(examples, require_action=require_action, image_size=self.vlm.image_size)
        queries = self.action_model.query_embeds(batch.batch_size)
        features = self.vlm(batch.images, batch.lang, query_embeds=queries)
        pred = self.action_model(features.hidden[:, -self.action_model.num_queries :], batch.state)
        return batch, pred

    def per_sample_action_loss(self, examples: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        batch, pred = self._chunk(examples, require_action=True)
        return masked_chunk_loss(pred, batch.action, batch.action_mask, self.action_config.loss)

    def _predict(self, examples: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        return self._chunk(examples, require_action=False)[1]

"""Shared code of LlamaOFT and PaliGemmaOFT: a decoder VLM + the OFT action head (parallel decoding, L1).

    images, instruction --> prompt tokens --.
    action queries (learned, in the head) ---+--> VLM --> hidden states at the queries
    proprio state -----------------------------------------------> OFTActionHead --> chunk [B, H, A]

The two policies differ only in their backbone class (`backbone_cls`) and
YAML block (`framework.mllama` / `framework.paligemma`). YAML:

    framework:
      name: LlamaOFT | PaliGemmaOFT
      mllama | paligemma: {base_vlm, init, size, attn_implementation, gradient_checkpointing, dtype, max_text_tokens}
      action_model: {action_horizon, num_action_queries, hidden_dim, num_layers, dropout, loss, query_init_std}
                    (configuration_oft.py)

Top-level children (learning-rate keys): vlm, action_model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch

from AlphaBrain.dataloader.spec import DataSpec
from AlphaBrain.model.backbones.prompt import PromptBackbone
from AlphaBrain.model.core.batch import PolicyBatch
from AlphaBrain.model.modules.oft_head import OFTActionHead
from AlphaBrain.model.policies.common.base import ChunkRegressionPolicy
from AlphaBrain.model.policies.common.configuration_oft import OFTActionModelConfig
from AlphaBrain.model.policies.common.vlm_policy import VLMPolicy


class OFTPolicy(VLMPolicy, ChunkRegressionPolicy):
    """Base of LlamaOFT / PaliGemmaOFT; subclasses set `backbone_cls`."""

    backbone_cls: ClassVar[type[PromptBackbone]]
    action_model_config: ClassVar[type[OFTActionModelConfig]] = OFTActionModelConfig
    needs_pretrained_weights: ClassVar[bool] = True

    def __init__(self, data_spec: DataSpec, vlm: PromptBackbone, action_model: OFTActionModelConfig | None = None) -> None:
        action_model = OFTActionModelConfig.for_horizon(action_model, data_spec.action_horizon)
        super().__init__(data_spec, vlm, action_model.action_horizon)
        self.action_config = action_model
        self.action_model = OFTActionHead(
            vlm.hidden_size, self.action_horizon, self.action_dim, self.state_dim,
            action_model.hidden_dim, action_model.num_layers, num_queries=action_model.num_action_queries,
            **action_model.as_kwargs("dropout", "query_init_std"),
        )

    def _chunk(self, examples: Sequence[Mapping[str, Any]], *, require_action: bool) -> tuple[PolicyBatch, torch.Tensor]:
        batch = self.collate(examples, require_action=require_action, image_size=self.vlm.image_size)
        queries = self.action_model.query_embeds(batch.batch_size)
        features = self.vlm(batch.images, batch.lang, query_embeds=queries)
        pred = self.action_model(features.hidden[:, -self.action_model.num_queries :], batch.state)
        return batch, pred

"""NeuroVLA: Qwen2.5-VL backbone + Q-Former + spiking (LIF) action head.

    camera images + instruction --(Qwen2.5-VL, framework.qwenvl)--> last hidden states [B, L, 2048], mask [B, L]
        --(Q-Former, framework.qformer)--> num_queries tokens [B, Q, dim]
        --(spiking head, framework.action_model; + proprio state)--> action chunk [B, horizon, action_dim]

Loss: L1 (default), MSE or Huber on the normalized chunk, averaged over the
valid steps of each sample (`action_mask`). The head is a regression head, so
`action_outputs` (used by distillation methods) is the predicted chunk itself.

Backbone depth: the public NeuroVLA (github.com/guoweiyu/NeuroVLA) runs the
whole Qwen2.5-VL-3B (all 36 decoder layers) and feeds the Q-Former the
hidden states of its last layer(s); this framework does the same with the
last hidden state, so the full-size model has ~3.8 B parameters (Qwen2.5-VL-3B
alone is ~3.75 B) rather than a truncated ~3.0 B. See docs/models/neurovla.md.

YAML (`configs/continual_learning/models/neurovla.yaml`): `framework.qwenvl`, `framework.qformer`
and `framework.action_model`, listed in configuration_neurovla.py.

Top-level children (learning-rate keys): vlm, qformer, action_model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch

from AlphaBrain.dataloader.spec import DataSpec
from AlphaBrain.model.backbones.base import VLMBackbone
from AlphaBrain.model.backbones.qwen2_5_vl import QwenVLBackbone
from AlphaBrain.model.core.batch import PolicyBatch
from AlphaBrain.model.modules.qformer import QFormer
from AlphaBrain.model.modules.spiking_head import SpikingActionHead
from AlphaBrain.model.policies.common.base import ChunkRegressionPolicy
from AlphaBrain.model.policies.common.vlm_policy import VLMPolicy
from AlphaBrain.model.policies.neurovla.configuration_neurovla import QFormerConfig, SpikingActionModelConfig


class NeuroVLA(VLMPolicy, ChunkRegressionPolicy):
    """Qwen2.5-VL + Q-Former + spiking action head (see the module docstring)."""

    backbone_cls: ClassVar[type[VLMBackbone]] = QwenVLBackbone
    action_model_config: ClassVar[type[SpikingActionModelConfig]] = SpikingActionModelConfig
    extra_blocks: ClassVar[Mapping[str, type[QFormerConfig]]] = {"qformer": QFormerConfig}
    # The default config (init: pretrained) needs Qwen2.5-VL-3B on disk; tests build the tiny random one.
    needs_pretrained_weights: ClassVar[bool] = True

    def __init__(
        self,
        data_spec: DataSpec,
        vlm: VLMBackbone,
        qformer: QFormerConfig | None = None,
        action_model: SpikingActionModelConfig | None = None,
    ) -> None:
        qformer = qformer if qformer is not None else QFormerConfig()
        action_model = SpikingActionModelConfig.for_horizon(action_model, data_spec.action_horizon)
        super().__init__(data_spec, vlm, action_model.action_horizon)
        self.qformer_config = qformer
        self.action_config = action_model
        self.qformer = QFormer(
            vlm.hidden_size,
            qformer.dim,
            qformer.num_queries,
            qformer.num_layers,
            qformer.num_heads,
            qformer.mlp_ratio,
            qformer.dropout,
        )
        self.action_model = SpikingActionHead(
            qformer.dim, qformer.num_queries, self.state_dim, self.action_horizon, self.action_dim,
            **action_model.as_kwargs(
                "hidden_sizes", "num_steps", "beta", "threshold", "surrogate_slope", "readout_beta", "state_hidden",
                "pool", "dropout",
            ),
        )

    # ---- computation ------------------------------------------------------------------------------

    def _tokens(self, examples: Sequence[Mapping[str, Any]], require_action: bool) -> tuple[PolicyBatch, torch.Tensor]:
        batch, features = self.encode(examples, require_action=require_action)
        return batch, self.qformer(features.hidden, features.mask)

    def _chunk(self, examples: Sequence[Mapping[str, Any]], *, require_action: bool) -> tuple[PolicyBatch, torch.Tensor]:
        batch, tokens = self._tokens(examples, require_action)
        # The head computes in its own dtype; the chunk is float32 like the targets.
        return batch, self.action_model(tokens, batch.state).float()

    def spike_rates(self, examples: Sequence[Mapping[str, Any]]) -> list[torch.Tensor]:
        """Mean firing rate of every neuron of each LIF layer, [B, width] per layer (diagnostics, no grad)."""
        with torch.no_grad():
            batch, tokens = self._tokens(examples, require_action=False)
            return self.action_model(tokens, batch.state, return_spikes=True)[1]

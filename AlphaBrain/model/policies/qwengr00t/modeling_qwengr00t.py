"""QwenGR00T: Qwen2.5-VL-3B + a GR00T-N1.5-style flow-matching DiT action head (~3.9 B parameters).

    camera images + instruction --Qwen2.5-VL (QwenVLBackbone)--> last hidden states [B, L, 2048] + mask
    state + noised action chunk + time --DiT (cross-attends to the hidden states)--> velocity
    training: flow-matching MSE on the velocity (R noise draws per sample); inference: N Euler steps

YAML (`configs/continual_learning/models/qwengr00t.yaml`, `qwengr00t_tiny.yaml`): `framework.qwenvl`
and `framework.action_model`, listed in configuration_qwengr00t.py.

Top-level children (learning-rate keys): vlm, action_model. LoRA adapts `vlm.hf_model`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch

from AlphaBrain.dataloader.spec import DataSpec
from AlphaBrain.model.backbones.qwen2_5_vl import QwenVLBackbone
from AlphaBrain.model.modules.flow_matching_head import FlowMatchingHead, content_seed
from AlphaBrain.model.policies.common.vlm_policy import VLMPolicy
from AlphaBrain.model.policies.qwengr00t.configuration_qwengr00t import FlowMatchingConfig


class QwenGR00T(VLMPolicy):
    """Qwen2.5-VL backbone + flow-matching DiT head (see the module docstring)."""

    backbone_cls: ClassVar[type[QwenVLBackbone]] = QwenVLBackbone
    action_model_config: ClassVar[type[FlowMatchingConfig]] = FlowMatchingConfig
    #: the default block loads Qwen2.5-VL-3B from disk; tests build `init: random, size: tiny` explicitly.
    needs_pretrained_weights: ClassVar[bool] = True

    def __init__(self, data_spec: DataSpec, vlm: QwenVLBackbone, action_model: FlowMatchingConfig) -> None:
        super().__init__(data_spec, vlm, action_model.action_horizon)
        self.action_config = action_model
        self.action_model = FlowMatchingHead(
            action_model, vlm_dim=vlm.hidden_size, state_dim=self.state_dim, action_dim=self.action_dim
        )

    # ---- the contract ------------------------------------------------------------------------------

    def per_sample_action_loss(self, examples: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        batch, feats = self.encode(examples, require_action=True)
        return self.action_model.loss(feats.hidden, feats.mask, batch.state, batch.action, batch.action_mask)

    def _predict(self, examples: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        batch, feats = self.encode(examples, require_action=False)
        return self.action_model.sample(feats.hidden, feats.mask, batch.state, [content_seed(ex) for ex in examples])

    def action_outputs(self, examples: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        """Velocity at the sample's content-seeded noise and t = 0 (deterministic per sample, differentiable)."""
        batch, feats = self.encode(examples, require_action=False)
        seeds = [content_seed(ex) for ex in examples]
        return self.action_model.distill_output(feats.hidden, feats.mask, batch.state, seeds)

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

YAML (`configs/continual_learning/models/neurovla.yaml`):

    framework:
      name: NeuroVLA
      qwenvl: {base_vlm, init, size, image_size, system_prompt, attn_implementation,
               gradient_checkpointing, dtype, max_text_tokens}
      qformer: {num_queries, dim, num_layers, num_heads, mlp_ratio, dropout}
      action_model: {action_horizon, hidden_sizes, num_steps, beta, threshold, surrogate_slope,
                     readout_beta, state_hidden, pool, dropout, loss}

Top-level children (learning-rate keys): vlm, qformer, action_model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from AlphaBrain.dataloader.spec import DataSpec
from AlphaBrain.model.backbones.base import VLMBackbone
from AlphaBrain.model.backbones.qwen2_5_vl import QwenVLBackbone
from AlphaBrain.model.framework.base import masked_chunk_loss
from AlphaBrain.model.framework.config import BlockConfig
from AlphaBrain.model.framework.vlm_policy import VLMPolicy
from AlphaBrain.model.modules.qformer import QFormer
from AlphaBrain.model.modules.spiking_head import SpikingActionHead
from AlphaBrain.model.registry import register_framework
from AlphaBrain.utils.errors import ConfigError



@dataclass
class QFormerConfig(BlockConfig):
    """The `framework.qformer` block."""

    yaml_path: ClassVar[str] = "framework.qformer"

    num_queries: int = 64  # learned query tokens = tokens handed to the action head (public NeuroVLA: 64)
    dim: int = 768  # the Q-Former's width (public NeuroVLA: 768)
    num_layers: int = 2  # blocks of self-attention + cross-attention + MLP
    num_heads: int = 8
    mlp_ratio: float = 4.0
    dropout: float = 0.0

    def __post_init__(self) -> None:
        self.check_int("num_queries", 1, 1024)
        self.check_int("dim", 8, 8192)
        self.check_int("num_layers", 1, 24)
        self.check_int("num_heads", 1, 64)
        if self.dim % self.num_heads:
            raise ConfigError(
                f"{self._where('dim')} = {self.dim} is not a multiple of {self._where('num_heads')} = {self.num_heads}; "
                "attention splits dim evenly across heads."
            )
        self.check_float("mlp_ratio", 0.25, 16.0)
        self.check_float("dropout", 0.0, 0.9)


@dataclass
class SpikingActionModelConfig(BlockConfig):
    """The `framework.action_model` block of NeuroVLA (the spiking head)."""

    yaml_path: ClassVar[str] = "framework.action_model"

    action_horizon: int = 8
    hidden_sizes: list[int] = field(default_factory=lambda: [1536, 1536])  # LIF layers (public NeuroVLA: 2 x 768)
    num_steps: int = 8  # simulated time steps per forward
    beta: float = 0.9  # membrane leak per step (1 = perfect integrator, 0 = no memory)
    threshold: float = 1.0  # firing threshold
    surrogate_slope: float = 25.0  # fast-sigmoid surrogate slope (snntorch's default)
    readout_beta: float = 0.8  # leak of the non-spiking readout that integrates the last layer's spikes
    state_hidden: int = 128  # width of the proprioception encoder (skipped without state)
    pool: str = "mean"  # how Q-Former tokens become one vector: mean | flatten
    dropout: float = 0.0
    loss: str = "l1"

    LOSSES: ClassVar[tuple[str, ...]] = ("l1", "mse", "huber")
    POOLS: ClassVar[tuple[str, ...]] = ("mean", "flatten")

    def __post_init__(self) -> None:
        self.check_int("action_horizon", 1, 256)
        self.check_int_list("hidden_sizes", 4, 16384, min_len=1, max_len=8)
        self.check_int("num_steps", 1, 256)
        self.check_float("beta", 0.0, 1.0)
        self.check_float("threshold", 0.0, None, low_inclusive=False)
        self.check_float("surrogate_slope", 0.0, None, low_inclusive=False)
        self.check_float("readout_beta", 0.0, 1.0)
        self.check_int("state_hidden", 1, 8192)
        self.check_choice("pool", self.POOLS)
        self.check_float("dropout", 0.0, 0.9)
        self.check_choice("loss", self.LOSSES)


@register_framework("NeuroVLA", aliases=("neurovla",))
class NeuroVLA(VLMPolicy):
    """Qwen2.5-VL + Q-Former + spiking action head (see the module docstring)."""

    backbone_cls: ClassVar[type[VLMBackbone]] = QwenVLBackbone
    extra_blocks: ClassVar[tuple[str, ...]] = ("qformer",)
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
        action_model = action_model if action_model is not None else SpikingActionModelConfig(
            action_horizon=data_spec.action_horizon
        )
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
            qformer.dim,
            qformer.num_queries,
            self.state_dim,
            self.action_horizon,
            self.action_dim,
            hidden_sizes=action_model.hidden_sizes,
            num_steps=action_model.num_steps,
            beta=action_model.beta,
            threshold=action_model.threshold,
            surrogate_slope=action_model.surrogate_slope,
            readout_beta=action_model.readout_beta,
            state_hidden=action_model.state_hidden,
            pool=action_model.pool,
            dropout=action_model.dropout,
        )

    @classmethod
    def from_config(cls, cfg: Any, data_spec: DataSpec) -> "NeuroVLA":
        block = cls.framework_block(cfg)
        # Validate the small blocks before building a multi-GB backbone, so a typo fails in a second.
        qformer = QFormerConfig.from_block(block.get("qformer"))
        action_model = cls.head_config(block, data_spec, SpikingActionModelConfig)
        return cls(data_spec, cls.build_backbone(block), qformer=qformer, action_model=action_model)

    # ---- computation ------------------------------------------------------------------------------

    def _actions(self, examples: Sequence[Mapping[str, Any]], require_action: bool):
        batch, features = self.encode(examples, require_action=require_action)
        tokens = self.qformer(features.hidden, features.mask)
        return batch, self.action_model(tokens, batch.state)

    def per_sample_action_loss(self, examples: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        batch, pred = self._actions(examples, require_action=True)
        return masked_chunk_loss(pred, batch.action, batch.action_mask, self.action_config.loss)

    def _predict(self, examples: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        return self._actions(examples, require_action=False)[1].float()

    def spike_rates(self, examples: Sequence[Mapping[str, Any]]) -> list[torch.Tensor]:
        """Mean firing rate of every neuron of each LIF layer, [B, width] per layer (diagnostics, no grad)."""
        with torch.no_grad():
            batch, features = self.encode(examples, require_action=False)
            tokens = self.qformer(features.hidden, features.mask)
            return self.action_model(tokens, batch.state, return_spikes=True)[1]

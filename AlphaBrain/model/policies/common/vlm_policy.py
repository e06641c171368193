"""Shared base of the four large policies: a VLM backbone (`self.vlm`) + an action head (`self.action_model`).

    QwenGR00T     Qwen2.5-VL   + flow-matching DiT head
    NeuroVLA      Qwen2.5-VL   + Q-Former + spiking head
    LlamaOFT      Llama-3.2-V  + parallel-decoding MLP head (L1)
    PaliGemmaOFT  PaliGemma    + parallel-decoding MLP head (L1)

Top-level children are the learning-rate keys (`trainer.learning_rate.vlm`,
`.action_model`, and any extra module a policy adds, e.g. `qformer`).
LoRA wraps `self.vlm.hf_model`; every other child stays fully trainable.

A subclass sets `backbone_cls`, `action_model_config` (the dataclass of
`framework.action_model`) and, for further framework-level blocks,
`extra_blocks` (YAML key -> dataclass); the inherited `from_config` then
validates every small block, builds the backbone and calls
`cls(data_spec, vlm, action_model=..., **extra blocks)`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch

from AlphaBrain.dataloader.spec import DataSpec
from AlphaBrain.model.backbones.base import VLMBackbone, VLMFeatures
from AlphaBrain.model.core.batch import PolicyBatch
from AlphaBrain.model.core.config import ActionModelConfig, BlockConfig, to_plain
from AlphaBrain.model.policies.common.base import BaseVLAPolicy
from AlphaBrain.utils.errors import ConfigError, did_you_mean


class VLMPolicy(BaseVLAPolicy):
    """A policy whose observations are encoded by a `VLMBackbone` into last hidden states."""

    #: the backbone class; its `block_key` names the policy's YAML block (e.g. framework.qwenvl).
    backbone_cls: ClassVar[type[VLMBackbone]]
    #: the dataclass of `framework.action_model`.
    action_model_config: ClassVar[type[ActionModelConfig]]
    #: framework-level YAML blocks besides name, the backbone block and action_model (e.g. NeuroVLA's qformer),
    #: each with its dataclass; `from_config` passes them to the constructor by key.
    extra_blocks: ClassVar[Mapping[str, type[BlockConfig]]] = {}

    def __init__(self, data_spec: DataSpec, vlm: VLMBackbone, action_horizon: int) -> None:
        self.check_action_horizon(action_horizon, data_spec)
        super().__init__(data_spec, action_horizon=action_horizon)
        self.vlm = vlm

    # ---- construction -----------------------------------------------------------------------------

    @classmethod
    def from_config(cls, cfg: Any, data_spec: DataSpec) -> "VLMPolicy":
        block = cls.framework_block(cfg)
        # Validate the small blocks before building a multi-GB backbone, so a typo fails in a second.
        extras = {key: config_cls.from_block(block.get(key)) for key, config_cls in cls.extra_blocks.items()}
        head = cls.head_config(block, data_spec, cls.action_model_config)
        return cls(data_spec, cls.build_backbone(block), action_model=head, **extras)

    @classmethod
    def framework_block(cls, cfg: Any) -> dict[str, Any]:
        """`cfg.framework` as a plain dict; an unknown key is a ConfigError naming the valid ones."""
        block = dict(to_plain(cfg["framework"]) or {})
        valid = ["name", cls.backbone_cls.block_key, "action_model", *cls.extra_blocks]
        for key in block:
            if key not in valid:
                raise ConfigError(
                    f'Unknown key "framework.{key}" for {cls.__name__}.{did_you_mean(str(key), valid)} '
                    f"Valid keys: {', '.join(valid)}."
                )
        return block

    @classmethod
    def build_backbone(cls, block: Mapping[str, Any]) -> VLMBackbone:
        return cls.backbone_cls.from_block(block.get(cls.backbone_cls.block_key))

    # ---- computation -----------------------------------------------------------------------------

    @property
    def lora_target(self) -> torch.nn.Module:
        """The module LoRA adapts (the transformers model inside the backbone)."""
        return self.vlm.hf_model

    def encode(self, examples: Sequence[Mapping[str, Any]], *, require_action: bool) -> tuple[PolicyBatch, VLMFeatures]:
        batch = self.collate(examples, require_action=require_action, image_size=self.vlm.image_size)
        return batch, self.vlm(batch.images, batch.lang)

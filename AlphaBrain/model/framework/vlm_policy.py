"""Shared base of the four large frameworks: a VLM backbone (`self.vlm`) + an action head (`self.action_model`).

    QwenGR00T     Qwen2.5-VL   + flow-matching DiT head
    NeuroVLA      Qwen2.5-VL   + Q-Former + spiking head
    LlamaOFT      Llama-3.2-V  + parallel-decoding MLP head (L1)
    PaliGemmaOFT  PaliGemma    + parallel-decoding MLP head (L1)

Top-level children are the learning-rate keys (`trainer.learning_rate.vlm`,
`.action_model`, and any extra module a framework adds, e.g. `qformer`).
LoRA wraps `self.vlm.hf_model`; every other child stays fully trainable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import torch

from AlphaBrain.dataloader.spec import DataSpec
from AlphaBrain.model.backbones.base import VLMBackbone, VLMFeatures
from AlphaBrain.model.framework.base import BaseVLAPolicy, PolicyBatch
from AlphaBrain.model.framework.config import BlockConfig, to_plain
from AlphaBrain.utils.errors import ConfigError, did_you_mean

T = TypeVar("T", bound=BlockConfig)


class VLMPolicy(BaseVLAPolicy):
    """A framework whose observations are encoded by a `VLMBackbone` into last hidden states."""

    #: the backbone class; its `block_key` names the framework's YAML block (e.g. framework.qwenvl).
    backbone_cls: ClassVar[type[VLMBackbone]]

    def __init__(self, data_spec: DataSpec, vlm: VLMBackbone, action_horizon: int) -> None:
        self.check_action_horizon(action_horizon, data_spec)
        super().__init__(data_spec, action_horizon=action_horizon)
        self.vlm = vlm

    # ---- construction helpers for subclasses' from_config ---------------------------------------

    #: framework-level YAML blocks besides name, the backbone block and action_model (e.g. NeuroVLA's qformer).
    extra_blocks: ClassVar[tuple[str, ...]] = ()

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

    @classmethod
    def head_config(cls, block: Mapping[str, Any], data_spec: DataSpec, config_cls: type[T]) -> T:
        """`framework.action_model` parsed as `config_cls` (action_horizon defaults to the dataset's chunk
        length) and checked against the data: done before the backbone is built, so a typo in the head
        block fails in a second rather than after loading gigabytes of weights."""
        head = dict(to_plain(block.get("action_model")) or {})
        head.setdefault("action_horizon", data_spec.action_horizon)
        config = config_cls.from_block(head)
        cls.check_action_horizon(config.action_horizon, data_spec)
        return config

    # ---- computation -----------------------------------------------------------------------------

    @property
    def lora_target(self) -> torch.nn.Module:
        """The module LoRA adapts (the transformers model inside the backbone)."""
        return self.vlm.hf_model

    def encode(self, examples: Sequence[Mapping[str, Any]], *, require_action: bool) -> tuple[PolicyBatch, VLMFeatures]:
        batch = self.collate(examples, require_action=require_action, image_size=self.vlm.image_size)
        return batch, self.vlm(batch.images, batch.lang)

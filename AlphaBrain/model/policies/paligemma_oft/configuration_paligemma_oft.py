"""The YAML blocks of PaliGemmaOFT: `framework.paligemma` (PaliGemmaConfig), `framework.action_model` (OFTActionModelConfig)."""

from AlphaBrain.model.backbones.paligemma import PaliGemmaConfig
from AlphaBrain.model.policies.common.configuration_oft import OFTActionModelConfig

__all__ = ["PaliGemmaConfig", "OFTActionModelConfig"]

"""The YAML blocks of LlamaOFT: `framework.mllama` (MllamaConfig) and `framework.action_model` (OFTActionModelConfig)."""

from AlphaBrain.model.backbones.mllama import MllamaConfig
from AlphaBrain.model.policies.common.configuration_oft import OFTActionModelConfig

__all__ = ["MllamaConfig", "OFTActionModelConfig"]

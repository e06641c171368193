"""LlamaOFT: Llama-3.2-Vision + the OFT action head (imported on demand: it needs transformers)."""

from AlphaBrain.model.policies.llamaoft.configuration_llamaoft import OFTActionModelConfig, MllamaConfig
from AlphaBrain.model.policies.llamaoft.modeling_llamaoft import LlamaOFT

__all__ = ["LlamaOFT", "OFTActionModelConfig", "MllamaConfig"]

"""PaliGemmaOFT: PaliGemma + the OFT action head (imported on demand: it needs transformers)."""

from AlphaBrain.model.policies.paligemma_oft.configuration_paligemma_oft import OFTActionModelConfig, PaliGemmaConfig
from AlphaBrain.model.policies.paligemma_oft.modeling_paligemma_oft import PaliGemmaOFT

__all__ = ["PaliGemmaOFT", "OFTActionModelConfig", "PaliGemmaConfig"]

"""VLA frameworks. Each module registers its policy class with `register_framework`.

Light frameworks are imported here; the large ones (QwenGR00T, NeuroVLA,
LlamaOFT, PaliGemmaOFT) are imported on demand by `build_framework`.
"""

from AlphaBrain.model.framework.base import BaseVLAPolicy, PolicyBatch, collate_examples, masked_chunk_loss
from AlphaBrain.model.framework.config import BlockConfig
from AlphaBrain.model.framework.tiny_vla import TinyActionModelConfig, TinyVLA, TinyVLAConfig

__all__ = [
    "BaseVLAPolicy",
    "BlockConfig",
    "PolicyBatch",
    "TinyActionModelConfig",
    "TinyVLA",
    "TinyVLAConfig",
    "collate_examples",
    "masked_chunk_loss",
]

"""VLA policies, one folder per architecture (the layout of Hugging Face LeRobot's policies):

    common/          the policy contract and the bases shared by several policies
    tiny_vla/        TinyVLA        (light: imported with `AlphaBrain.model`)
    qwengr00t/       QwenGR00T      \\
    neurovla/        NeuroVLA        |  large: need transformers, imported on demand by
    llamaoft/        LlamaOFT        |  `AlphaBrain.model.registry.build_framework`
    paligemma_oft/   PaliGemmaOFT   /

Each folder holds `configuration_<name>.py` (the dataclasses of its YAML blocks, validated
in `__post_init__`) and `modeling_<name>.py` (the `nn.Module`). Policies do not register
themselves: `AlphaBrain/model/registry.py` names them, so nothing here imports the registry.
"""

from AlphaBrain.model.policies.common.base import BaseVLAPolicy, ChunkRegressionPolicy
from AlphaBrain.model.policies.tiny_vla import TinyActionModelConfig, TinyVLA, TinyVLAConfig

__all__ = [
    "BaseVLAPolicy",
    "ChunkRegressionPolicy",
    "TinyActionModelConfig",
    "TinyVLA",
    "TinyVLAConfig",
]

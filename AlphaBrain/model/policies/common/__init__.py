"""What several policies share: the policy contract and the bases the policy folders build on.

    base.py               `BaseVLAPolicy` (the contract), `ChunkRegressionPolicy` (heads that regress the chunk)
    vlm_policy.py         `VLMPolicy`: a VLM backbone + an action head (the four large policies)
    configuration_oft.py  `OFTActionModelConfig`, the head block of LlamaOFT and PaliGemmaOFT
    modeling_oft.py       `OFTPolicy`, their shared model (imported by those folders only: it needs transformers)
"""

from AlphaBrain.model.policies.common.base import BaseVLAPolicy, ChunkRegressionPolicy

__all__ = ["BaseVLAPolicy", "ChunkRegressionPolicy"]

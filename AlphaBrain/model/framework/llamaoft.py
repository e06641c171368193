"""LlamaOFT: Llama-3.2-11B-Vision + the OFT parallel-decoding MLP head (L1), ~10.7 B parameters.

Learned action queries are appended to the Instruct prompt; the decoder reads
the camera images through its cross-attention layers, and the head decodes the
queries' last hidden states (plus the proprio state) into the whole chunk.
See `oft_policy.py` for the YAML and `backbones/mllama.py` for the prompt.
Model overlays: configs/continual_learning/models/llamaoft.yaml, llamaoft_tiny.yaml.
"""

from __future__ import annotations

from AlphaBrain.model.backbones.mllama import MllamaBackbone
from AlphaBrain.model.framework.oft_policy import OFTPolicy
from AlphaBrain.model.registry import register_framework


@register_framework("LlamaOFT", aliases=("llamaoft",))
class LlamaOFT(OFTPolicy):
    """`framework.mllama` backbone + `framework.action_model` OFT head."""

    backbone_cls = MllamaBackbone

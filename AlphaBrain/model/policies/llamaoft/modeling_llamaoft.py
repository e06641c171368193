"""LlamaOFT: Llama-3.2-11B-Vision + the OFT parallel-decoding MLP head (L1), ~10.7 B parameters.

Learned action queries are appended to the Instruct prompt; the decoder reads
the camera images through its cross-attention layers, and the head decodes the
queries' last hidden states (plus the proprio state) into the whole chunk.
See `model/policies/common/modeling_oft.py` for the shared code and `model/backbones/mllama.py`
for the prompt. Model overlays: configs/continual_learning/models/llamaoft.yaml, llamaoft_tiny.yaml.
"""

from __future__ import annotations

from typing import ClassVar

from AlphaBrain.model.backbones.mllama import MllamaBackbone
from AlphaBrain.model.policies.common.modeling_oft import OFTPolicy


class LlamaOFT(OFTPolicy):
    """`framework.mllama` backbone + `framework.action_model` OFT head."""

    backbone_cls: ClassVar[type[MllamaBackbone]] = MllamaBackbone

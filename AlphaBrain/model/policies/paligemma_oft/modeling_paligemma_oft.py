"""PaliGemmaOFT: PaliGemma-3B (SigLIP + Gemma-2B) + the OFT parallel-decoding MLP head (L1), ~2.9 B parameters.

Each camera is one block of 256 image tokens in the prefix; learned action
queries form the causal suffix after the instruction, and the head decodes
their last hidden states (plus the proprio state) into the whole chunk.
See `model/policies/common/modeling_oft.py` for the shared code and `model/backbones/paligemma.py`
for the prompt. Model overlays: configs/continual_learning/models/paligemma.yaml, paligemma_tiny.yaml.
"""

from __future__ import annotations

from typing import ClassVar

from AlphaBrain.model.backbones.paligemma import PaliGemmaBackbone
from AlphaBrain.model.policies.common.modeling_oft import OFTPolicy


class PaliGemmaOFT(OFTPolicy):
    """`framework.paligemma` backbone + `framework.action_model` OFT head."""

    backbone_cls: ClassVar[type[PaliGemmaBackbone]] = PaliGemmaBackbone

"""NeuroVLA: Qwen2.5-VL + Q-Former + spiking action head (imported on demand: it needs transformers)."""

from AlphaBrain.model.policies.neurovla.configuration_neurovla import (
    QFormerConfig,
    QwenVLConfig,
    SpikingActionModelConfig,
)
from AlphaBrain.model.policies.neurovla.modeling_neurovla import NeuroVLA

__all__ = ["NeuroVLA", "QFormerConfig", "QwenVLConfig", "SpikingActionModelConfig"]

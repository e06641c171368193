"""TinyVLA: a ~1.1 M-parameter CNN policy for CPU training (light: imported with `AlphaBrain.model`)."""

from AlphaBrain.model.policies.tiny_vla.configuration_tiny_vla import TinyActionModelConfig, TinyVLAConfig
from AlphaBrain.model.policies.tiny_vla.modeling_tiny_vla import TinyVLA

__all__ = ["TinyActionModelConfig", "TinyVLA", "TinyVLAConfig"]

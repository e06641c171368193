"""QwenGR00T: Qwen2.5-VL + a flow-matching DiT action head (imported on demand: it needs transformers)."""

from AlphaBrain.model.policies.qwengr00t.configuration_qwengr00t import FlowMatchingConfig, QwenVLConfig
from AlphaBrain.model.policies.qwengr00t.modeling_qwengr00t import QwenGR00T

__all__ = ["FlowMatchingConfig", "QwenGR00T", "QwenVLConfig"]

"""VLA policies: the framework registry, the policy contract and the frameworks.

    from AlphaBrain.model import build_framework
    policy = build_framework(cfg, data_spec)          # cfg.framework.name picks the class
    out = policy(examples)                            # {"action_loss": tensor, ...}
    chunk = policy.predict_action(examples)           # np.ndarray [B, horizon, action_dim]
"""

from AlphaBrain.model.registry import (
    FRAMEWORK_REGISTRY,
    build_framework,
    get_framework_class,
    known_frameworks,
    register_framework,
    resolve_framework_name,
)
from AlphaBrain.model.framework import BaseVLAPolicy, TinyVLA  # importing registers TinyVLA

__all__ = [
    "FRAMEWORK_REGISTRY",
    "BaseVLAPolicy",
    "TinyVLA",
    "build_framework",
    "get_framework_class",
    "known_frameworks",
    "register_framework",
    "resolve_framework_name",
]

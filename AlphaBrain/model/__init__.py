"""VLA policies: the framework registry, the policy contract and the policies.

    from AlphaBrain.model import build_framework
    policy = build_framework(cfg, data_spec)          # cfg.framework.name picks the class
    out = policy(examples)                            # {"action_loss": tensor, ...}
    chunk = policy.predict_action(examples)           # np.ndarray [B, horizon, action_dim]

Layout (lowest first; a module imports only from its own level or below, never in a circle):

    core/        BlockConfig, collation, losses: what everything else builds on
    backbones/   VLM backbones          modules/   heads and blocks
    policies/    one folder per policy (configuration_<name>.py + modeling_<name>.py), common/ bases
    registry.py, param_count.py, lora.py
"""

from AlphaBrain.model.policies import BaseVLAPolicy, TinyVLA
from AlphaBrain.model.registry import (
    FRAMEWORK_REGISTRY,
    build_framework,
    get_framework_class,
    known_frameworks,
    register_framework,
    resolve_framework_name,
)

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

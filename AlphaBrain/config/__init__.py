"""Run configuration: YAML composition, validation and environment interpolation."""

from AlphaBrain.config.loader import (
    CONFIG_ROOT,
    compose_config,
    config_to_yaml,
    env_or_none,
    load_run_config,
    model_overlay_path,
    available_models,
)

__all__ = [
    "CONFIG_ROOT",
    "compose_config",
    "config_to_yaml",
    "env_or_none",
    "load_run_config",
    "model_overlay_path",
    "available_models",
]

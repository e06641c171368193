"""The built-in Meta-World benchmark: environments, scripted experts, demo streams, suites.

    from AlphaBrain.benchmarks.metaworld import MetaWorldEnv, expert_policy, generate_stream_dataset
    path = generate_stream_dataset("metaworld_cl5")         # cached: a second call reuses it
    env = MetaWorldEnv("drawer-open-v3", image_size=(64, 64))

    python -m AlphaBrain.benchmarks.metaworld.generate --stream metaworld_cl5

Importing this package does not import MuJoCo (the names below load lazily). Its training
streams are declared in streams.py for the stream registry.
"""

from __future__ import annotations

from AlphaBrain.benchmarks.metaworld.tasks import (
    METAWORLD_STREAMS,
    STREAM_DESCRIPTIONS,
    TASKS,
    MetaWorldTaskSpec,
    data_root,
    default_dataset_dir,
    eval_seed,
    task_spec,
    train_seed,
)
from AlphaBrain.utils.lazy import lazy_attributes

_LAZY = {
    "MetaWorldEnv": "env",
    "expert_policy": "env",
    "CAMERAS": "env",
    "DEFAULT_CAMERA": "env",
    "generate_stream_dataset": "generate",
    "metaworld_suite": "suite",
}

__all__ = [
    "METAWORLD_STREAMS",
    "STREAM_DESCRIPTIONS",
    "TASKS",
    "MetaWorldTaskSpec",
    "data_root",
    "default_dataset_dir",
    "eval_seed",
    "task_spec",
    "train_seed",
    "MetaWorldEnv",
    "expert_policy",
    "CAMERAS",
    "DEFAULT_CAMERA",
    "generate_stream_dataset",
    "metaworld_suite",
]


__getattr__ = lazy_attributes(__name__, _LAZY)

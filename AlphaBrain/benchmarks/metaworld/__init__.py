"""The built-in Meta-World benchmark: environments, scripted experts, demo streams, suites.

    from AlphaBrain.benchmarks.metaworld import MetaWorldEnv, expert_policy, generate_stream_dataset
    path = generate_stream_dataset("metaworld_cl5")         # cached: a second call reuses it
    env = MetaWorldEnv("drawer-open-v3", image_size=(64, 64))

    python -m AlphaBrain.benchmarks.metaworld.generate --stream metaworld_cl5

Importing this package does not import MuJoCo (the names below load lazily), so
`register_cl_sequences()` is cheap enough to call from the package import.
"""

from __future__ import annotations

from typing import Any

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

_LAZY = {
    "MetaWorldEnv": "AlphaBrain.benchmarks.metaworld.env",
    "expert_policy": "AlphaBrain.benchmarks.metaworld.env",
    "CAMERAS": "AlphaBrain.benchmarks.metaworld.env",
    "DEFAULT_CAMERA": "AlphaBrain.benchmarks.metaworld.env",
    "generate_stream_dataset": "AlphaBrain.benchmarks.metaworld.generate",
    "metaworld_suite": "AlphaBrain.benchmarks.metaworld.suite",
}

__all__ = [
    "METAWORLD_STREAMS",
    "STREAM_DESCRIPTIONS",
    "TASKS",
    "MetaWorldTaskSpec",
    "data_root",
    "default_dataset_dir",
    "eval_seed",
    "register_cl_sequences",
    "task_spec",
    "train_seed",
    "MetaWorldEnv",
    "expert_policy",
    "CAMERAS",
    "DEFAULT_CAMERA",
    "generate_stream_dataset",
    "metaworld_suite",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def register_cl_sequences() -> None:
    """Make the Meta-World streams trainable by name (`continual_learning.task_sequence: metaworld_cl5`).

    Adds one entry per stream to CL_TASK_SEQUENCES, pointing at the stream's default dataset
    directory (read from $ALPHABRAIN_DATA_DIR now). Idempotent; entries already there are replaced.
    """
    from AlphaBrain.training.continual_learning.datasets.task_sequences import CL_TASK_SEQUENCES

    for name, env_names in METAWORLD_STREAMS.items():
        CL_TASK_SEQUENCES[name] = {
            "base_data_mix": str(default_dataset_dir(name)),
            "num_tasks": len(env_names),
            "task_stream_mode": "by_task_index",
            "description": STREAM_DESCRIPTIONS.get(name, name),
            "missing_hint": (
                f"generate the demos first: python -m AlphaBrain.benchmarks.metaworld.generate --stream {name}"
            ),
        }

"""The Meta-World training streams (metaworld_cl5, metaworld_cl10), declared for the stream registry.

Each reads the expert demos generated on this machine into $ALPHABRAIN_DATA_DIR/<stream> (the
directory is looked up when the stream is used, so the variable may be set after import).
"""

from __future__ import annotations

from AlphaBrain.benchmarks.metaworld.tasks import METAWORLD_STREAMS, STREAM_DESCRIPTIONS, default_dataset_dir
from AlphaBrain.streams.registry import StreamSpec


def _data_dir(name: str):
    return lambda: str(default_dataset_dir(name))


def streams() -> list[StreamSpec]:
    return [
        StreamSpec(
            name,
            base_data_mix=_data_dir(name),
            num_tasks=len(env_names),
            description=STREAM_DESCRIPTIONS.get(name, name),
            missing_hint=f"generate the demos first: python -m AlphaBrain.benchmarks.metaworld.generate --stream {name}",
        )
        for name, env_names in METAWORLD_STREAMS.items()
    ]

"""Task streams: named stream declarations and the per-task views of a base dataset.

    from AlphaBrain.streams import build_task_stream, get_task_sequence, stream_names
    stream = build_task_stream(cfg)           # TaskStream: ordered TaskFilteredDataset views
    stream.tasks[0].name, len(stream.tasks[0])

Layer: above `dataloader` (it cuts loaded datasets into tasks), below `model`. Benchmarks declare
their named streams (`StreamSpec`) through the `alphabrain.streams` entry points; this package never
imports a benchmark. The seeds' module paths `AlphaBrain.training.continual_learning.datasets.*`
re-export these names.
"""

from AlphaBrain.streams.build import INLINE_KEYS, TaskStream, build_task_stream, resolve_stream_spec
from AlphaBrain.streams.registry import (
    CL_TASK_SEQUENCES,
    ENTRY_POINT_GROUP,
    STREAM_MODES,
    StreamSpec,
    get_stream_spec,
    get_task_sequence,
    is_registered,
    register_stream,
    stream_names,
)
from AlphaBrain.streams.task_filter import TaskFilteredDataset, build_episode_task_map

__all__ = [
    "CL_TASK_SEQUENCES",
    "ENTRY_POINT_GROUP",
    "INLINE_KEYS",
    "STREAM_MODES",
    "StreamSpec",
    "TaskFilteredDataset",
    "TaskStream",
    "build_episode_task_map",
    "build_task_stream",
    "get_stream_spec",
    "get_task_sequence",
    "is_registered",
    "register_stream",
    "resolve_stream_spec",
    "stream_names",
]

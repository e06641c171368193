"""Continual-learning data primitives: task sequences, streams and per-task filtering.

The seeds' import path; the code lives in `AlphaBrain.streams`.
"""

from AlphaBrain.streams import (
    CL_TASK_SEQUENCES,
    STREAM_MODES,
    TaskFilteredDataset,
    TaskStream,
    build_episode_task_map,
    build_task_stream,
    get_task_sequence,
)

__all__ = [
    "CL_TASK_SEQUENCES",
    "TaskFilteredDataset",
    "build_episode_task_map",
    "get_task_sequence",
    "STREAM_MODES",
    "TaskStream",
    "build_task_stream",
]

"""Continual-learning data primitives: task sequences, streams and per-task filtering."""

from AlphaBrain.training.continual_learning.datasets.task_sequences import (
    CL_TASK_SEQUENCES,
    TaskFilteredDataset,
    build_episode_task_map,
    get_task_sequence,
)
from AlphaBrain.training.continual_learning.datasets.custom_streams import STREAM_MODES, TaskStream, build_task_stream

__all__ = [
    "CL_TASK_SEQUENCES",
    "TaskFilteredDataset",
    "build_episode_task_map",
    "get_task_sequence",
    "STREAM_MODES",
    "TaskStream",
    "build_task_stream",
]

"""Named CL task sequences and the per-task view of a dataset (the seeds' module path).

The code lives in `AlphaBrain.streams`: `CL_TASK_SEQUENCES` is a read-only view of the stream
registry, which reads the streams the benchmarks declare (LIBERO suites, Meta-World, libero_goal_mini).
"""

from AlphaBrain.streams.registry import CL_TASK_SEQUENCES, get_task_sequence
from AlphaBrain.streams.task_filter import TaskFilteredDataset, build_episode_task_map

__all__ = ["CL_TASK_SEQUENCES", "TaskFilteredDataset", "build_episode_task_map", "get_task_sequence"]

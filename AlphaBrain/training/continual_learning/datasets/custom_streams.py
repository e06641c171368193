"""Inline streams and partitioning modes (the seeds' module path; the code lives in `AlphaBrain.streams.build`)."""

from AlphaBrain.streams.build import INLINE_KEYS, TaskStream, build_task_stream, resolve_stream_spec
from AlphaBrain.streams.registry import STREAM_MODES

__all__ = ["INLINE_KEYS", "STREAM_MODES", "TaskStream", "build_task_stream", "resolve_stream_spec"]

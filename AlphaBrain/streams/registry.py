"""The one registry of named task streams.

A named stream (`--dataset libero_goal`, `continual_learning.task_sequence: metaworld_cl5`) is a
`StreamSpec`: which data to cut into tasks, how, and in which official order. Benchmarks declare
their streams; this module only reads the declarations, so nothing below the benchmarks imports a
benchmark. Declarations are found through the `alphabrain.streams` entry-point group of the
installed distributions (pyproject.toml lists the built-in ones), each entry point naming a
zero-argument callable that returns `StreamSpec`s. A third-party package adds its own streams the
same way, or a script calls `register_stream` directly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Union

from AlphaBrain.utils.errors import unknown_name

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "alphabrain.streams"
STREAM_MODES = ("by_task_index", "by_dataset", "auto")

DataMix = Union[str, Callable[[], Union[str, Path]]]


@dataclass(frozen=True)
class StreamSpec:
    """A named stream: a base data mixture cut into tasks, optionally in an official order.

    `base_data_mix` is a mixture name, a dataset path, or a callable giving one when the stream is
    used (so a path that depends on an environment variable is read at use, not at import).
    `task_names` fixes the training order by task name (slugified instructions), whatever order the
    dataset's `task_index` values have.
    """

    name: str
    base_data_mix: DataMix
    num_tasks: int | None = None
    task_stream_mode: str = "by_task_index"
    task_names: tuple[str, ...] = ()
    description: str = ""
    missing_hint: str = ""  # what to do when the data is missing, e.g. the command that generates it

    def __post_init__(self) -> None:
        if self.task_stream_mode not in STREAM_MODES:
            raise ValueError(f"stream {self.name!r}: task_stream_mode must be one of {STREAM_MODES}")

    def as_dict(self) -> dict[str, Any]:
        """The stream as the keys of an inline `task_sequence` block (the data mix resolved now)."""
        mix = self.base_data_mix() if callable(self.base_data_mix) else self.base_data_mix
        out: dict[str, Any] = {"base_data_mix": str(mix), "task_stream_mode": self.task_stream_mode,
                               "description": self.description}
        if self.num_tasks is not None:
            out["num_tasks"] = self.num_tasks
        if self.task_names:
            out["task_names"] = list(self.task_names)
        if self.missing_hint:
            out["missing_hint"] = self.missing_hint
        return out


_STREAMS: dict[str, StreamSpec] = {}
_declarations_read = False


def register_stream(spec: StreamSpec, *, overwrite: bool = False) -> None:
    """Add a named stream; an existing name is an error unless `overwrite`."""
    if spec.name in _STREAMS and not overwrite:
        raise ValueError(f"stream {spec.name!r} is already registered (pass overwrite=True to replace it)")
    _STREAMS[spec.name] = spec


def _read_declarations() -> None:
    global _declarations_read
    if _declarations_read:
        return
    _declarations_read = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        declare = ep.load()
        specs: Iterable[StreamSpec] = declare() if callable(declare) else declare
        for spec in specs:
            if spec.name not in _STREAMS:  # an explicit register_stream wins over a declaration
                _STREAMS[spec.name] = spec
    if not _STREAMS:
        logger.warning("no named task streams are declared: is AlphaBrain installed (pip install -e .)?")


def stream_names() -> list[str]:
    _read_declarations()
    return sorted(_STREAMS)


def is_registered(name: str) -> bool:
    _read_declarations()
    return name in _STREAMS


def get_stream_spec(name: str) -> StreamSpec:
    """The declared stream `name`; an unknown name lists the valid ones."""
    _read_declarations()
    if name not in _STREAMS:
        raise unknown_name("task sequence (continual_learning.task_sequence / --dataset)", name, _STREAMS)
    return _STREAMS[name]


def get_task_sequence(name: str) -> dict[str, Any]:
    """The declared stream `name` as a dict of inline-block keys (a fresh copy)."""
    return get_stream_spec(name).as_dict()


class StreamTable(Mapping[str, dict]):
    """Read-only name -> stream dict view of the registry (what `CL_TASK_SEQUENCES` is)."""

    def __getitem__(self, name: str) -> dict:
        if not is_registered(name):
            raise KeyError(name)
        return get_task_sequence(name)

    def __iter__(self) -> Iterator[str]:
        return iter(stream_names())

    def __len__(self) -> int:
        return len(stream_names())


CL_TASK_SEQUENCES = StreamTable()

"""Camera frames of one episode, fetched on demand and cached per episode.

Numeric columns are loaded once into memory by the dataset; camera frames are
far too large for that, so they are read per episode:

* "image" features (PNG bytes in parquet): the episode's encoded bytes are read
  once (only the row groups holding it) and cached; a PNG is decoded at its first
  access and the decoded frame kept, up to $ALPHABRAIN_FRAME_CACHE_MB (default
  2048) per process. Training draws every frame of a task dozens of times (1000
  steps of 64 over ~2000 frames), and decoding was a third of a small model's step.
* "video" features (mp4): a random access decodes just that frame (a seek to
  the keyframe before it, then at most one GOP). When an episode is read in
  order (frame f right after f-1: replay-buffer filling, evaluation, statistics),
  the whole episode segment is decoded once and cached, so the rest is free.
  Decoding whole episodes for random access would cost ~100x more per sample.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from AlphaBrain.dataloader.lerobot_format import VideoSegment
from AlphaBrain.dataloader.parquet_io import decode_image_cell, read_rows
from AlphaBrain.dataloader.video import decode_frame, decode_segment
from AlphaBrain.utils.errors import UserError


class LRUCache:
    """Least-recently-used cache bounded by an item count, and optionally by total bytes."""

    def __init__(self, capacity: int, max_bytes: int | None = None,
                 sizeof: Callable[[Any], int] | None = None) -> None:
        self.capacity = max(0, int(capacity))
        self.max_bytes, self._sizeof = max_bytes, sizeof
        self._bytes = 0
        self._sizes: dict[Any, int] = {}
        self._items: OrderedDict[Any, Any] = OrderedDict()

    def peek(self, key: Any) -> Any:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        return None

    def put(self, key: Any, value: Any) -> None:
        if self.capacity:
            if key in self._items:
                self._bytes -= self._sizes.pop(key, 0)
            self._items[key] = value
            self._items.move_to_end(key)
            if self._sizeof is not None:
                self._sizes[key] = self._sizeof(value)
                self._bytes += self._sizes[key]
            while len(self._items) > self.capacity or (
                self.max_bytes is not None and self._bytes > self.max_bytes and len(self._items) > 1
            ):
                old, _ = self._items.popitem(last=False)
                self._bytes -= self._sizes.pop(old, 0)

    def get(self, key: Any, load: Callable[[], Any]) -> Any:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = load()
        self.put(key, value)
        return value

    def clear(self) -> None:
        self._items.clear()
        self._sizes.clear()
        self._bytes = 0


def _encoded_bytes(cells: dict[str, list[Any]]) -> int:
    """Approximate memory of an episode's encoded image cells ({bytes, path} structs)."""
    total = 0
    for column in cells.values():
        for cell in column:
            data = cell.get("bytes") if isinstance(cell, dict) else cell
            total += len(data) if isinstance(data, (bytes, bytearray)) else 64
    return total


# Encoded PNG frames are small (a 64x64 frame is a few KB), so whole small datasets stay in memory
# and random sampling never re-reads parquet; large datasets are bounded by this budget.
PNG_CACHE_BYTES = 1 << 30
FRAME_CACHE_ENV = "ALPHABRAIN_FRAME_CACHE_MB"


def frame_cache_bytes() -> int:
    """The decoded-frame budget of one process: $ALPHABRAIN_FRAME_CACHE_MB MiB (0 turns the cache off)."""
    text = os.environ.get(FRAME_CACHE_ENV, "").strip()
    if not text:
        return 2048 << 20
    try:
        mb = int(text)
    except ValueError:
        raise UserError(f"{FRAME_CACHE_ENV} must be a whole number of MiB (0 = no cache), got '{text}'.") from None
    if mb < 0:
        raise UserError(f"{FRAME_CACHE_ENV} must be >= 0 (0 = no cache), got {mb}.")
    return mb << 20


def _nbytes(frame: np.ndarray) -> int:
    return frame.nbytes


def _decoded_cache() -> LRUCache:
    budget = frame_cache_bytes()
    return LRUCache(10_000_000 if budget else 0, max_bytes=budget, sizeof=_nbytes)


class EpisodeFrameSource:
    """Reads camera frames for (episode position, frame) pairs.

    `rows_of(pos)` gives (data file, row numbers in that file) of an episode's
    frames in frame order; `segment_of(pos, key)` its video segment.
    """

    def __init__(
        self,
        root: Path,
        image_keys: Sequence[str],
        dtypes: dict[str, str],
        fps: float,
        rows_of: Callable[[int], tuple[Path, np.ndarray]],
        segment_of: Callable[[int, str], VideoSegment],
        length_of: Callable[[int], int],
        video_cache_episodes: int = 4,
    ) -> None:
        self.root = root
        self.image_keys = list(image_keys)
        self.png_keys = [k for k in self.image_keys if dtypes[k] == "image"]
        self.video_keys = [k for k in self.image_keys if dtypes[k] == "video"]
        self.fps = fps
        self._rows_of, self._segment_of, self._length_of = rows_of, segment_of, length_of
        # Encoded PNG bytes are small: cache episodes up to a byte budget (random sampling over a
        # task touches every episode; re-reading parquet row groups per sample is the slow path).
        self._png_cache = LRUCache(1_000_000, max_bytes=PNG_CACHE_BYTES, sizeof=_encoded_bytes)
        self._video_cache = LRUCache(max(0, video_cache_episodes) * max(1, len(self.video_keys)))
        self._last_frame = LRUCache(256)  # (pos, key) -> frame last read: detects in-order reading
        self._decoded = _decoded_cache()  # (pos, key, frame) -> decoded PNG frame

    def frames(self, pos: int, frame: int) -> list[np.ndarray]:
        cells = self._png_cache.get(pos, lambda: self._read_cells(pos)) if self.png_keys else {}
        out = []
        for key in self.image_keys:
            if key in cells:
                decoded = self._decoded.get((pos, key, frame),
                                            lambda key=key: decode_image_cell(cells[key][frame], self.root, key))
                out.append(decoded.copy())  # a caller that augments in place must not alter the cache
            else:
                out.append(self._video_frame(pos, key, frame))
        return out

    def _video_frame(self, pos: int, key: str, frame: int) -> np.ndarray:
        # Copies: a caller that augments an image in place must not alter the cache.
        clip = self._video_cache.peek((pos, key))
        if clip is not None:
            return clip[frame].copy()
        previous = self._last_frame.peek((pos, key))
        self._last_frame.put((pos, key), frame)
        seg = self._segment_of(pos, key)
        if previous is not None and frame == previous + 1 and self._video_cache.capacity:
            clip = decode_segment(seg.path, seg.from_timestamp, self._length_of(pos), self.fps)
            self._video_cache.put((pos, key), clip)
            return clip[frame].copy()
        return decode_frame(seg.path, seg.from_timestamp + frame / self.fps, self.fps)

    def _read_cells(self, pos: int) -> dict[str, list[Any]]:
        path, rows = self._rows_of(pos)
        lo, hi = int(rows.min()), int(rows.max()) + 1
        table = read_rows(path, self.png_keys, lo, hi)
        cells = {}
        for key in self.png_keys:
            column = table.column(key).to_pylist()
            cells[key] = [column[r - lo] for r in rows]
        return cells

    def clear(self) -> None:
        self._png_cache.clear()
        self._video_cache.clear()
        self._last_frame.clear()
        self._decoded.clear()

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers start with empty caches instead of a copy of decoded video.
        state = self.__dict__.copy()
        state["_png_cache"] = LRUCache(self._png_cache.capacity, PNG_CACHE_BYTES, _encoded_bytes)
        state["_video_cache"] = LRUCache(self._video_cache.capacity)
        state["_last_frame"] = LRUCache(self._last_frame.capacity)
        state["_decoded"] = _decoded_cache()
        return state

"""The per-feature statistics LeRobot stores next to its data (episodes_stats.jsonl, stats.json).

These are LeRobot's own metadata (min/max/mean/std/count per feature, images per
channel in [0, 1]); the normalization statistics a policy trains with live in
`statistics.py` and are computed from the data, not read from here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}


def numeric_stats(values: np.ndarray, *, quantiles: bool = False) -> dict[str, Any]:
    """Stats of a [T] or [T, D] array, one value per dimension (scalar features give 1-element lists)."""
    x = np.asarray(values, dtype=np.float64)
    x = x.reshape(len(x), -1)
    out: dict[str, Any] = {
        "min": x.min(0).tolist(),
        "max": x.max(0).tolist(),
        "mean": x.mean(0).tolist(),
        "std": x.std(0).tolist(),
        "count": [int(len(x))],
    }
    if quantiles:
        for name, q in QUANTILES.items():
            out[name] = np.quantile(x, q, axis=0).tolist()
    return out


class ImageStats:
    """Per-channel pixel statistics accumulated episode by episode, LeRobot's (3, 1, 1) layout.

    Pixels are uint8, so a 256-bin histogram per channel gives exact statistics
    at a fraction of the cost of float reductions over every pixel.
    """

    _VALUES = np.arange(256, dtype=np.float64) / 255.0

    def __init__(self) -> None:
        self._frames = 0
        self._hist = np.zeros((3, 256), dtype=np.int64)

    @classmethod
    def _summary(cls, hist: np.ndarray, frames: int) -> dict[str, Any]:
        n = np.maximum(hist.sum(1), 1)
        mean = hist @ cls._VALUES / n
        var = np.maximum(hist @ cls._VALUES**2 / n - mean**2, 0.0)
        nonzero = hist > 0
        lo = np.array([cls._VALUES[np.argmax(row)] for row in nonzero])
        hi = np.array([cls._VALUES[255 - np.argmax(row[::-1])] for row in nonzero])

        def shaped(v: np.ndarray) -> list:
            return [[[float(c)]] for c in v]

        return {"min": shaped(lo), "max": shaped(hi), "mean": shaped(mean), "std": shaped(np.sqrt(var)),
                "count": [frames]}

    def add_episode(self, frames: np.ndarray) -> dict[str, Any]:
        """Add [T, H, W, 3] uint8 frames; return this episode's stats."""
        hist = np.stack([np.bincount(frames[..., c].ravel(), minlength=256) for c in range(3)])
        self._hist += hist
        self._frames += len(frames)
        return self._summary(hist, len(frames))

    def total(self) -> dict[str, Any]:
        return self._summary(self._hist, self._frames)

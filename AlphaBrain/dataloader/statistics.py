"""Normalization statistics (dataset_statistics.json) and the Normalizer that applies them.

Format (docs/data/lerobot.md), one entry per embodiment (datasets sharing an embodiment are pooled):

    {"libero_franka": {"action": {"mean", "std", "min", "max", "q01", "q99", "mask"},
                       "state":  {... same ...},
                       "num_transitions": N, "num_trajectories": E,
                       "data_fingerprint": "sha256:..."}}

`data_fingerprint` identifies the data the entry was computed on (fingerprint.py); files written
before it existed have none and still load.

Values are normalized with the 1st/99th percentiles to [-1, 1] (robust to
outliers, unlike min/max). `mask[d] == False` marks a binary gripper axis
(q01 == 0 and q99 == 1 exactly): such an axis is not rescaled but binarized at
0.5, both when normalizing training targets and when unnormalizing predictions,
so the gripper command stays an exact open/close.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from AlphaBrain.dataloader.fingerprint import FINGERPRINT_KEY, fingerprint_of
from AlphaBrain.dataloader.lerobot_format import read_json_object
from AlphaBrain.utils.atomic_io import atomic_write_json
from AlphaBrain.utils.errors import DatasetError

_RECOMPUTE = (
    "recompute with scripts/run_continual_learning_scripts/compute_dataset_statistics.py "
    "--config <your config> --out {path}"
)
_EPS = 1e-8


def _flatten_datasets(datasets: Any) -> list[Any]:
    """Accept a single dataset, a mixture, or an iterable of either."""
    if hasattr(datasets, "raw_arrays"):
        return [datasets]
    if hasattr(datasets, "datasets"):
        return list(datasets.datasets)
    out = []
    for d in datasets:
        out.extend(_flatten_datasets(d))
    return out


def array_statistics(x: np.ndarray) -> dict[str, list]:
    """mean/std/min/max/q01/q99/mask of an [N, D] array, as lists of Python floats/bools."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise DatasetError(f"statistics need a non-empty [N, D] array, got shape {list(x.shape)}")
    q01 = np.quantile(x, 0.01, axis=0)
    q99 = np.quantile(x, 0.99, axis=0)
    mask = ~((q01 == 0.0) & (q99 == 1.0))
    return {
        "mean": x.mean(0).tolist(),
        "std": x.std(0).tolist(),
        "min": x.min(0).tolist(),
        "max": x.max(0).tolist(),
        "q01": q01.tolist(),
        "q99": q99.tolist(),
        "mask": [bool(m) for m in mask],
    }


def compute_dataset_statistics(datasets: Any) -> dict[str, dict[str, Any]]:
    """Statistics keyed by embodiment, from the raw (unnormalized) state and action of every frame."""
    groups: dict[str, list[Any]] = {}
    for ds in _flatten_datasets(datasets):
        groups.setdefault(ds.embodiment, []).append(ds)
    if not groups:
        raise DatasetError("no datasets given to compute statistics on")
    out: dict[str, dict[str, Any]] = {}
    for embodiment, members in groups.items():
        states, actions = zip(*(ds.raw_arrays() for ds in members))
        dims = {(s.shape[1], a.shape[1]) for s, a in zip(states, actions)}
        if len(dims) > 1:
            roots = ", ".join(str(ds.root) for ds in members)
            raise DatasetError(
                f"datasets with embodiment {embodiment!r} have different (state, action) dims {sorted(dims)}: "
                f"{roots}; give them different embodiment tags"
            )
        out[embodiment] = {
            "action": array_statistics(np.concatenate(actions)),
            "state": array_statistics(np.concatenate(states)),
            "num_transitions": int(sum(len(a) for a in actions)),
            "num_trajectories": int(sum(len(ds.episodes) for ds in members)),
            FINGERPRINT_KEY: fingerprint_of(embodiment, members),
        }
    return out


def save_dataset_statistics(stats: Mapping[str, Any], path: str | Path) -> Path:
    path = Path(path)
    atomic_write_json(path, dict(stats))
    return path


def load_dataset_statistics(
    path: str | Path, expected: Mapping[str, tuple[int, int]] | None = None
) -> dict[str, dict[str, Any]]:
    """Read dataset_statistics.json; with `expected` = {embodiment: (state_dim, action_dim)}, check it fits."""
    path = Path(path)
    fix = _RECOMPUTE.format(path=path)
    if not path.is_file():
        raise DatasetError(f"statistics file {path} not found; {fix}")
    stats = read_json_object(path, f"statistics file {path}", fix, holds="a JSON object keyed by embodiment")
    for embodiment, (state_dim, action_dim) in (expected or {}).items():
        if embodiment not in stats:
            raise DatasetError(
                f"statistics file {path} has no entry for embodiment {embodiment!r} "
                f"(it has: {', '.join(stats) or 'none'}); {fix}"
            )
        entry = stats[embodiment]
        for key, want in (("state", state_dim), ("action", action_dim)):
            try:
                have = len(entry[key]["q01"])
            except (KeyError, TypeError):
                raise DatasetError(f"statistics file {path} lacks {key}.q01 for {embodiment!r}; {fix}") from None
            if have != want:
                raise DatasetError(
                    f"statistics file {path} has {key} dim {have} for {embodiment!r} but the dataset has {want}: "
                    f"it was computed for another dataset; {fix}"
                )
    return stats


class _AxisScaler:
    """q01/q99 <-> [-1, 1] for one group (state or action), with pass-through masked axes."""

    def __init__(self, entry: Mapping[str, Any], name: str) -> None:
        try:
            self.q01 = np.asarray(entry["q01"], dtype=np.float64)
            self.q99 = np.asarray(entry["q99"], dtype=np.float64)
        except (KeyError, TypeError):
            raise DatasetError(f"statistics for {name} need q01 and q99 lists") from None
        mask = entry.get("mask")
        self.mask = np.ones_like(self.q01, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        if not (self.q01.shape == self.q99.shape == self.mask.shape) or self.q01.ndim != 1:
            raise DatasetError(f"statistics for {name}: q01, q99 and mask must be lists of the same length")
        rng = self.q99 - self.q01
        # A constant axis (q99 == q01) has no range to scale by: it maps to 0 and back to q01.
        self.degenerate = np.abs(rng) < _EPS
        self.range = np.where(self.degenerate, 1.0, rng)
        self.name = name

    def _check(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.shape[-1:] != self.q01.shape:
            have = x.shape[-1] if x.ndim else 0
            raise DatasetError(f"{self.name} has {have} dims, the statistics have {len(self.q01)}")
        return x

    def normalize(self, x: np.ndarray, binarize: bool) -> np.ndarray:
        x = self._check(x)
        y = np.clip(2.0 * (x - self.q01) / self.range - 1.0, -1.0, 1.0)
        y = np.where(self.degenerate, 0.0, y)
        passthrough = (x >= 0.5).astype(np.float64) if binarize else x
        return np.where(self.mask, y, passthrough).astype(np.float32)

    def unnormalize(self, y: np.ndarray) -> np.ndarray:
        y = self._check(y)
        x = (np.clip(y, -1.0, 1.0) + 1.0) / 2.0 * self.range + self.q01
        x = np.where(self.degenerate, self.q01, x)
        return np.where(self.mask, x, (y >= 0.5).astype(np.float64)).astype(np.float32)


class Normalizer:
    """Normalizes state/action with the statistics of one embodiment.

    Works on arrays of any leading shape ([D], [T, D], [B, T, D]); returns float32.
    """

    def __init__(self, stats: Mapping[str, Any]) -> None:
        if "action" not in stats:
            raise DatasetError("statistics for one embodiment need an 'action' entry (pass stats[embodiment])")
        self.stats = stats
        self._action = _AxisScaler(stats["action"], "action")
        self._state = _AxisScaler(stats["state"], "state") if "state" in stats else None

    @classmethod
    def from_file(cls, path: str | Path, embodiment: str, dims: tuple[int, int] | None = None) -> "Normalizer":
        stats = load_dataset_statistics(path, {embodiment: dims} if dims else None)
        if embodiment not in stats:
            raise DatasetError(
                f"statistics file {path} has no entry for embodiment {embodiment!r} (it has: {', '.join(stats)})"
            )
        return cls(stats[embodiment])

    @property
    def action_dim(self) -> int:
        return len(self._action.q01)

    def normalize_state(self, x: np.ndarray) -> np.ndarray:
        """q01/q99 -> [-1, 1]; masked (binary) axes pass through unchanged."""
        if self._state is None:
            raise DatasetError(
                "these statistics have no 'state' entry; recompute them with compute_dataset_statistics.py"
            )
        return self._state.normalize(x, binarize=False)

    def normalize_action(self, x: np.ndarray) -> np.ndarray:
        """q01/q99 -> [-1, 1], clipped; masked (gripper) axes binarized to {0, 1} at 0.5."""
        return self._action.normalize(x, binarize=True)

    def unnormalize_action(self, y: np.ndarray) -> np.ndarray:
        """Inverse of normalize_action (inputs clipped to [-1, 1]); gripper axes binarized at 0.5."""
        return self._action.unnormalize(y)


def stats_dims(stats: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    """{embodiment: (state_dim, action_dim)} of a statistics dict."""
    return {e: (len(v["state"]["q01"]), len(v["action"]["q01"])) for e, v in stats.items()}


def expected_dims(datasets: Iterable[Any]) -> dict[str, tuple[int, int]]:
    """{embodiment: (state_dim, action_dim)} of datasets, for load_dataset_statistics(expected=...)."""
    return {ds.embodiment: (ds.state_dim, ds.action_dim) for ds in _flatten_datasets(datasets)}

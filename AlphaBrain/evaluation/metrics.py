"""Continual-learning metrics: pure functions of a T x T success matrix.

`a[k][i]` is the success rate (a fraction in 0..1) on the i-th task of the
training order, measured with the checkpoint written after training the k-th
task. Rows and columns are both in training order (see
`AlphaBrain.evaluation.matrix.train_order_matrix`, which maps the columns of a
matrix.json by task name). NaN marks a cell that was not evaluated.

A metric that needs a cell which was not evaluated is None, never an estimate
from the cells that happen to be there. The one exception is ASR, which is
defined as the mean over the evaluated tasks of the final row.

Every function returns plain Python floats (or None), so results go straight
into JSON.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

# Scalar metrics in the order they are reported (metrics.json, the CLI, multi-seed aggregation).
SCALAR_METRICS: tuple[str, ...] = (
    "asr",
    "bwt",
    "forgetting",
    "average_accuracy",
    "average_incremental_accuracy",
    "diagonal_mean",
    "zero_shot_next",
    "forward_transfer",
)


def _square(a) -> np.ndarray:
    arr = np.asarray(a, dtype=float)  # None -> nan
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] == 0:
        raise ValueError(
            f"expected a non-empty T x T success matrix (rows and columns in train order), got shape {arr.shape}"
        )
    return arr


def _mean_if_complete(values: np.ndarray) -> Optional[float]:
    """Mean of `values`, or None when it is empty or any value is missing."""
    if values.size == 0 or np.isnan(values).any():
        return None
    return float(values.mean())


def asr(a) -> Optional[float]:
    """Average success rate of the final checkpoint, over the tasks it was evaluated on.

    Missing cells of the final row are skipped; a final row with no evaluated cell gives None.
    """
    last = _square(a)[-1]
    evaluated = last[~np.isnan(last)]
    return float(evaluated.mean()) if evaluated.size else None


def average_accuracy(a) -> Optional[float]:
    """A_T: mean of the final row over all T tasks.

    Equals ASR when the final row is complete. When a cell of the final row is
    missing, ASR still averages the evaluated tasks while A_T is None: it is
    defined over every task of the stream.
    """
    return _mean_if_complete(_square(a)[-1])


def bwt(a) -> Optional[float]:
    """Backward transfer (Lopez-Paz & Ranzato 2017): 1/(T-1) sum_{i<T-1} (a[T-1][i] - a[i][i]).

    0 = no change on earlier tasks, < 0 = forgetting, > 0 = later training helped them.
    None for T = 1 or when a needed cell (final row or diagonal, first T-1 tasks) is missing.
    """
    arr = _square(a)
    t = arr.shape[0]
    if t < 2:
        return None
    idx = np.arange(t - 1)
    return _mean_if_complete(arr[t - 1, idx] - arr[idx, idx])


def forgetting(a) -> Optional[float]:
    """Average forgetting (Chaudhry et al. 2018): 1/(T-1) sum_{i<T-1} (max_{i<=l<=T-2} a[l][i] - a[T-1][i]).

    The drop from each earlier task's best score (from its own training up to
    the checkpoint before the last) to its final score. 0 = every peak kept.
    None for T = 1 or when a needed cell (column i from row i down) is missing.
    """
    arr = _square(a)
    t = arr.shape[0]
    if t < 2:
        return None
    drops = []
    for i in range(t - 1):
        column = arr[i:, i]  # rows i .. T-1
        if np.isnan(column).any():
            return None
        drops.append(column[:-1].max() - column[-1])
    return float(np.mean(drops))


def accuracy_over_time(a) -> list[Optional[float]]:
    """A_k = mean_{i<=k} a[k][i] for every k: mean success on the tasks trained so far.

    Entry k is None when a cell a[k][0..k] is missing.
    """
    arr = _square(a)
    return [_mean_if_complete(arr[k, : k + 1]) for k in range(arr.shape[0])]


def average_incremental_accuracy(a) -> Optional[float]:
    """Mean over k of A_k (see `accuracy_over_time`); None if any A_k is None."""
    curve = accuracy_over_time(a)
    if any(v is None for v in curve):
        return None
    return float(np.mean(curve))


def diagonal_mean(a) -> Optional[float]:
    """Mean of a[i][i]: how well each task is learned right after training on it."""
    return _mean_if_complete(np.diag(_square(a)))


def zero_shot_next(a) -> Optional[float]:
    """Mean of a[i-1][i], i >= 1: success on each task just before training on it.

    The uncorrected term of forward transfer; it needs no untrained-policy baseline.
    None for T = 1 or when a needed cell (just above the diagonal) is missing.
    """
    arr = _square(a)
    t = arr.shape[0]
    if t < 2:
        return None
    idx = np.arange(1, t)
    return _mean_if_complete(arr[idx - 1, idx])


def forward_transfer(a, initial: Optional[Sequence[Optional[float]]] = None) -> Optional[float]:
    """Forward transfer (Lopez-Paz & Ranzato 2017): 1/(T-1) sum_{i>=1} (a[i-1][i] - b_i).

    `initial[i]` = b_i, the success of the policy before any training on the
    i-th task of the train order. None when `initial` is not given, for T = 1,
    or when a needed cell is missing.
    """
    arr = _square(a)
    t = arr.shape[0]
    if initial is None or t < 2:
        return None
    b = np.asarray(initial, dtype=float)
    if b.shape != (t,):
        raise ValueError(f"initial must have one value per task ({t}), got shape {b.shape}")
    idx = np.arange(1, t)
    return _mean_if_complete(arr[idx - 1, idx] - b[idx])


def compute_metrics(a, initial: Optional[Sequence[Optional[float]]] = None) -> dict:
    """Every metric of this module: the `SCALAR_METRICS` keys plus the `accuracy_over_time` curve.

    Values are fractions (not percent) or None when the matrix cannot give them.
    """
    arr = _square(a)
    return {
        "asr": asr(arr),
        "bwt": bwt(arr),
        "forgetting": forgetting(arr),
        "average_accuracy": average_accuracy(arr),
        "average_incremental_accuracy": average_incremental_accuracy(arr),
        "diagonal_mean": diagonal_mean(arr),
        "zero_shot_next": zero_shot_next(arr),
        "forward_transfer": forward_transfer(arr, initial),
        "accuracy_over_time": accuracy_over_time(arr),
    }


def aggregate(values: Sequence[Optional[float]]) -> dict:
    """{"mean", "std", "n"} over the non-None values; std is the sample std (ddof=1), None when n < 2."""
    kept = np.asarray([v for v in values if v is not None], dtype=float)
    n = int(kept.size)
    return {
        "mean": float(kept.mean()) if n else None,
        "std": float(kept.std(ddof=1)) if n >= 2 else None,
        "n": n,
    }


def format_percent(v: Optional[float], digits: int = 1) -> str:
    """A fraction as "97.6 %"; None as "—"."""
    return "—" if v is None else f"{_no_negative_zero(v * 100, digits):.{digits}f} %"


def format_pp(v: Optional[float], signed: bool = False, digits: int = 1) -> str:
    """A difference of fractions in percentage points: "-1.2 pp" ("+1.2 pp" when signed); None as "—"."""
    if v is None:
        return "—"
    x = _no_negative_zero(v * 100, digits)
    return f"{x:+.{digits}f} pp" if signed and x != 0 else f"{x:.{digits}f} pp"


def _no_negative_zero(x: float, digits: int) -> float:
    return round(x, digits) + 0.0  # + 0.0 turns -0.0 into 0.0

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
    "nbt",
    "fwt_libero",
    "auc_libero",
)


# label, unit ("%" = level, "pp" = difference), what it means
DESCRIPTIONS = {
    "asr": ("ASR", "%", "mean success of the final checkpoint over the tasks it was evaluated on"),
    "bwt": ("BWT", "pp", "final minus right-after-training success on earlier tasks; < 0 means forgetting"),
    "forgetting": ("F", "pp", "drop from each earlier task's best success to its final one; 0 = peaks kept"),
    "average_accuracy": ("A_T", "%", "final checkpoint's mean over all tasks (— if one was not evaluated)"),
    "average_incremental_accuracy": ("AIA", "%", "mean over checkpoints of the mean success on the tasks seen so far"),
    "diagonal_mean": ("Diag", "%", "mean success on each task right after training on it"),
    "zero_shot_next": ("Next", "%", "mean success on each task just before training on it"),
    "forward_transfer": ("FWT", "pp", "Next minus the untrained policy's success; > 0 = earlier tasks helped"),
    "nbt": ("NBT", "pp", "LIBERO: mean drop from right-after-training to every later checkpoint; > 0 = forgetting"),
    "fwt_libero": ("FWT_L", "%", "LIBERO: mean success along each task's own learning curve (how fast it is learned)"),
    "auc_libero": ("AUC_L", "%", "LIBERO: learning-curve mean and later success of each task, averaged"),
}


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


def nbt(a) -> Optional[float]:
    """Negative backward transfer (LIBERO, Liu et al. 2023): 1/(T-1) sum_{k<T-1} NBT_k, with
    NBT_k = 1/(T-1-k) sum_{tau=k+1}^{T-1} (a[k][k] - a[tau][k]).

    Unlike BWT it averages the drop over every later checkpoint, not only the final one, and its
    sign is flipped: > 0 = forgetting. The last task has no later checkpoint, so its empty term is
    left out. None for T = 1 or when a needed cell (column k from row k down) is missing.
    """
    arr = _square(a)
    t = arr.shape[0]
    if t < 2:
        return None
    per_task = [arr[k, k] - arr[k + 1:, k] for k in range(t - 1)]
    if any(np.isnan(drops).any() for drops in per_task):
        return None
    return float(np.mean([drops.mean() for drops in per_task]))


Curve = Optional[Sequence[Optional[float]]]


def held_at_peak(curve: Sequence[float]) -> np.ndarray:
    """The curve with every point after its first maximum set to that maximum.

    LIBERO keeps the checkpoint of the first best evaluation of a task and treats training as if it
    had stopped there, so the later points of the curve count at the peak value.
    """
    values = np.asarray(curve, dtype=float)
    peak = int(np.argmax(values))  # argmax returns the first maximum
    values[peak:] = values[peak]
    return values


def fwt_libero_per_task(curves: Sequence[Curve]) -> list[Optional[float]]:
    """FWT_k = 1/(m+1) sum_{e=0}^{m} c'_{k,e}: the mean of task k's learning curve held at its peak.

    `curves[k]` = c_{k,0..m}, the success on task k at the evaluation points along its training
    (see `held_at_peak`); None (or a missing point) gives None for that task.
    """
    out: list[Optional[float]] = []
    for curve in curves:
        values = None if curve is None else np.asarray(curve, dtype=float)
        ok = values is not None and values.ndim == 1 and values.size > 0 and not np.isnan(values).any()
        out.append(float(held_at_peak(values).mean()) if ok else None)
    return out


def fwt_libero(curves: Optional[Sequence[Curve]]) -> Optional[float]:
    """Forward transfer as LIBERO defines it: 1/T sum_k FWT_k (see `fwt_libero_per_task`).

    None without curves or when a task's curve is missing: a learning speed is never guessed.
    """
    if not curves:
        return None
    per_task = fwt_libero_per_task(curves)
    return None if any(v is None for v in per_task) else float(np.mean(per_task))


def auc_libero(a, curves: Optional[Sequence[Curve]]) -> Optional[float]:
    """LIBERO's area under the success curve: 1/T sum_k AUC_k, with
    AUC_k = 1/(T-k) (FWT_k + sum_{tau=k+1}^{T-1} a[tau][k]).

    It joins how fast task k is learned (FWT_k) with how well it is kept afterwards. None without
    curves, or when a task's curve or a cell below the diagonal is missing.
    """
    arr = _square(a)
    t = arr.shape[0]
    if not curves:
        return None
    if len(curves) != t:
        raise ValueError(f"curves must have one entry per task ({t}), got {len(curves)}")
    per_task = fwt_libero_per_task(curves)
    aucs = []
    for k, fwt_k in enumerate(per_task):
        later = arr[k + 1:, k]
        if fwt_k is None or np.isnan(later).any():
            return None
        aucs.append((fwt_k + later.sum()) / (t - k))
    return float(np.mean(aucs))


def compute_metrics(a, initial: Optional[Sequence[Optional[float]]] = None,
                    curves: Optional[Sequence[Curve]] = None) -> dict:
    """Every metric of this module: the `SCALAR_METRICS` keys plus the `accuracy_over_time` curve.

    `curves[k]` is the learning curve of the k-th task of the train order (see `fwt_libero_per_task`);
    without it FWT/AUC of LIBERO are None. Values are fractions (not percent) or None when the
    matrix cannot give them.
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
        "nbt": nbt(arr),
        "fwt_libero": fwt_libero(curves),
        "auc_libero": auc_libero(arr, curves),
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


def format_value(key: str, v: Optional[float]) -> str:
    """A metric as printed: levels in %, differences in pp (BWT and FWT with their sign)."""
    unit = DESCRIPTIONS[key][1]
    if unit == "%":
        return format_percent(v)
    return format_pp(v, signed=key in ("bwt", "forward_transfer"))

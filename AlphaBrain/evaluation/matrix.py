"""matrix.json files and what is computed from them: reading, writing, train-order views, metrics.

The file format, the `SuccessMatrix` type and the validation of a file's content are in
`success_matrix.py`. Here a matrix is read (`load_matrix`, `as_matrix`), written
(`write_matrix`, `write_metrics`), mapped to the training order by task name
(`train_order_matrix`, `train_order_initial`), turned into metrics (`metrics_json`,
`aggregate_runs` and `final_per_task` over seeds) and printed (`format_matrix_table`).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from AlphaBrain.evaluation import metrics as M
from AlphaBrain.runs.layout import CHECKPOINTS_DIR, STREAM_FILE
from AlphaBrain.evaluation.success_matrix import KNOWN_KEYS, SuccessMatrix, matrix_from_dict, rates_to_json
from AlphaBrain.utils.atomic_io import atomic_write_json, atomic_write_text
from AlphaBrain.utils.errors import UserError

MATRIX_FILE = "matrix.json"
METRICS_FILE = "metrics.json"

MatrixLike = Union[SuccessMatrix, dict, str, os.PathLike]  # what `as_matrix` accepts


def resolve_matrix_path(path_or_dir: str | os.PathLike) -> Path:
    """The matrix.json of an eval dir, or the given file."""
    path = Path(path_or_dir)
    if path.is_dir():
        candidate = path / MATRIX_FILE
        if candidate.is_file():
            return candidate
        hint = ""
        if (path / STREAM_FILE).is_file() or (path / CHECKPOINTS_DIR).is_dir():
            hint = " It looks like a training run dir: pass the evaluation dir results/eval_cl/<run_id> instead."
        else:
            hint = " Pass results/eval_cl/<run_id> after the evaluation has finished, or a matrix.json file."
        raise UserError(f"{path} has no {MATRIX_FILE}.{hint}")
    if not path.exists():
        raise UserError(
            f"{path} does not exist: expected an evaluation dir (results/eval_cl/<run_id>) or a matrix.json."
        )
    return path


def load_matrix(path_or_dir: str | os.PathLike) -> SuccessMatrix:
    """Read and validate a matrix.json, given as the file or as the eval dir that holds it."""
    path = resolve_matrix_path(path_or_dir)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path}: {exc}.") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}).") from None
    return matrix_from_dict(data, source=str(path))


def as_matrix(obj: MatrixLike) -> SuccessMatrix:
    """A `SuccessMatrix` from itself, a matrix.json dict, or a path (file or eval dir)."""
    if isinstance(obj, SuccessMatrix):
        return obj
    if isinstance(obj, dict):
        return matrix_from_dict(obj)
    return load_matrix(obj)


def train_order_matrix(m: MatrixLike) -> np.ndarray:
    """The T x T matrix a[k][i] in train order: row k = after training task k, column i = task train_order[i].

    Columns are matched by task name; an eval task outside the stream is left out (see
    `SuccessMatrix.extra_eval_tasks`), a trained task that was not evaluated is a NaN column,
    and a checkpoint that was not evaluated is a NaN row (a last-only matrix has only row T-1).
    """
    m = as_matrix(m)
    t = m.num_tasks
    out = np.full((t, t), np.nan)
    column = {name: j for j, name in enumerate(m.eval_tasks)}
    for i, name in enumerate(m.train_order):
        j = column.get(name)
        if j is not None:
            out[m.row_positions, i] = m.success[:, j]
    return out


def train_order_initial(m: MatrixLike) -> Optional[np.ndarray]:
    """The untrained policy's success per task of the train order (NaN where not evaluated), or None."""
    m = as_matrix(m)
    if m.initial is None:
        return None
    column = {name: j for j, name in enumerate(m.eval_tasks)}
    return np.array([m.initial[column[n]] if n in column else np.nan for n in m.train_order])


def final_row(m: SuccessMatrix) -> Optional[np.ndarray]:
    """The final checkpoint's row over `eval_tasks` (file order), or None when it was not evaluated."""
    if m.num_tasks - 1 not in m.row_positions:
        return None
    return m.success[m.row_positions.index(m.num_tasks - 1)]


def metrics_json(m: MatrixLike, curve: Optional[dict] = None) -> dict:
    """What goes into metrics.json: the metrics as fractions (or null), then the matrix's shape and task lists.

    `curve` is the evaluation's curve.json content (see curve.py): it gives LIBERO's FWT and AUC.
    """
    from AlphaBrain.evaluation.curve import curve_values

    m = as_matrix(m)
    initial = None if m.initial is None else {n: float(v) for n, v in zip(m.eval_tasks, m.initial) if not math.isnan(v)}
    curves = curve_values(curve, list(m.train_order), initial)
    out = M.compute_metrics(train_order_matrix(m), train_order_initial(m), curves)
    last = final_row(m)
    extra = {}
    for name in m.extra_eval_tasks:
        v = None if last is None else last[m.eval_tasks.index(name)]
        extra[name] = None if v is None or math.isnan(v) else float(v)
    out.update(
        run_id=m.run_id,
        suite=m.suite,
        num_tasks=m.num_tasks,
        num_checkpoints=m.num_checkpoints,
        last_only=m.last_only,
        train_order=list(m.train_order),
        extra_eval_tasks=extra,
        missing_eval_tasks=m.missing_eval_tasks,
        has_curve=curves is not None,
    )
    return out


def format_matrix_table(m: MatrixLike) -> str:
    """The matrix as a text table in %: rows "after T<k>", columns T<i> in train order, then extra eval tasks."""
    m = as_matrix(m)
    a = train_order_matrix(m)
    t = m.num_tasks
    extra = m.extra_eval_tasks
    cols = [f"T{i}" for i in range(t)] + [f"X{j}" for j in range(len(extra))]
    rows = []
    if m.initial is not None:
        init = list(train_order_initial(m)) + [m.initial[m.eval_tasks.index(n)] for n in extra]
        rows.append(("untrained", init))
    for k in range(t):
        values = list(a[k])
        if k in m.row_positions:
            r = m.row_positions.index(k)
            values += [m.success[r, m.eval_tasks.index(n)] for n in extra]
        else:
            values += [np.nan] * len(extra)
        rows.append((f"after T{k}", values))
    width = 7
    label_w = max(len(r[0]) for r in rows) + 2
    out = ["Success (%); rows: checkpoint after training task T<k>; columns: tasks in train order. — = not evaluated.",
           " " * label_w + "".join(f"{c:>{width}}" for c in cols)]
    for label, values in rows:
        cells = "".join(f"{'—' if np.isnan(v) else f'{v * 100:.1f}':>{width}}" for v in values)
        out.append(f"{label:<{label_w}}{cells}")
    out += [f"  T{i}: {n}" for i, n in enumerate(m.train_order)]
    out += [f"  X{j}: {n} (not in the training stream)" for j, n in enumerate(extra)]
    return "\n".join(out)


def _matrix_file(path: str | os.PathLike, default_name: str) -> Path:
    path = Path(path)
    return path if path.suffix == ".json" else path / default_name


def write_matrix(path: str | os.PathLike, matrix: Union[SuccessMatrix, dict, None] = None, **fields: Any) -> Path:
    """Validate and atomically write a matrix.json; `path` is the file or the eval dir. Returns the file.

    Give either `matrix` (a `SuccessMatrix` or a matrix.json dict; a dict's other keys are kept)
    or the keys as keywords: `train_order`, `eval_tasks`, `success` and optionally `checkpoints`,
    `run_id`, `suite`, `initial`, `trials`. `success` and `initial` may be nested lists or arrays,
    with None or NaN for cells that were not evaluated (written as null).
    """
    if matrix is not None and fields:
        raise TypeError("write_matrix takes a matrix or keyword fields, not both")
    if isinstance(matrix, SuccessMatrix):
        data = matrix.to_dict()
    elif isinstance(matrix, dict):
        data = dict(matrix)
    elif matrix is None:
        unknown = sorted(set(fields) - set(KNOWN_KEYS))
        if unknown:
            raise TypeError(f"write_matrix got unknown field(s) {unknown}; valid: {', '.join(KNOWN_KEYS)}")
        data = {key: fields.get(key) for key in KNOWN_KEYS if key in fields or key in ("run_id", "suite")}
    else:
        raise TypeError(f"write_matrix: matrix must be a SuccessMatrix or a dict, got {type(matrix).__name__}")
    for key, ndim in (("success", 2), ("initial", 1)):
        if data.get(key) is not None:
            try:
                arr = np.asarray(data[key], dtype=float)
            except (TypeError, ValueError):  # ragged or non-numeric: the validator says what is wrong
                continue
            if arr.ndim == ndim:
                data[key] = rates_to_json(arr)
    for key in ("train_order", "eval_tasks", "checkpoints"):
        if isinstance(data.get(key), (tuple, np.ndarray)):
            data[key] = list(data[key])
    if isinstance(data.get("trials"), np.ndarray):
        data["trials"] = data["trials"].tolist()
    if data.get("initial") is None:
        data.pop("initial", None)
    if data.get("trials") is None:
        data.pop("trials", None)
    file = _matrix_file(path, MATRIX_FILE)
    matrix_from_dict(data, source=str(file))  # never write a file that load_matrix would reject
    atomic_write_text(file, _dump_matrix(data))
    return file


def _dump_matrix(data: dict) -> str:
    """JSON with one line per key and one line per matrix row, so a 10 x 10 matrix reads as a table."""
    parts = []
    for key, value in data.items():
        if isinstance(value, list) and value and all(isinstance(r, list) for r in value):
            rows = ",\n    ".join(json.dumps(r) for r in value)
            parts.append(f"  {json.dumps(key)}: [\n    {rows}\n  ]")
        else:
            parts.append(f"  {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def write_metrics(path: str | os.PathLike, m: MatrixLike, curve: Optional[dict] = None) -> Path:
    """Atomically write `metrics_json(m, curve)` to `path` (a .json file, or a dir that gets metrics.json)."""
    file = _matrix_file(path, METRICS_FILE)
    atomic_write_json(file, metrics_json(m, curve))
    return file


def read_stream_order(stream_json: str | os.PathLike) -> list[str]:
    """Task names in training order from a run's stream.json (results/Checkpoints/<run_id>/stream.json).

    This is what the evaluator writes as `train_order`. The run layer reads the file; it is imported
    here, on use, so that loading and scoring a matrix.json never pulls in torch.
    """
    from AlphaBrain.runs import read_stream_order as read_run_stream_order

    return read_run_stream_order(stream_json)


def aggregate_runs(runs: Sequence[dict]) -> dict:
    """Mean, sample std and count of every scalar metric over several runs (e.g. seeds).

    `runs` are metric dicts (`metrics_json` or `compute_metrics` output). A None value is
    skipped and not counted: {"bwt": {"mean": ..., "std": ..., "n": 2}} when one of three runs
    was last-only. std is None when n < 2, mean is None when n = 0.
    """
    return {key: M.aggregate([r.get(key) for r in runs]) for key in M.SCALAR_METRICS}


def final_per_task(matrices: Sequence[MatrixLike]) -> Optional[dict]:
    """Each task's success after the last task, over several runs of one stream (e.g. seeds).

    {task: {"values": [run 1, run 2, ...], "mean", "std", "n"}} in the first run's train order; a run
    whose final checkpoint or task column was not evaluated gives None there (skipped by mean and
    std). Which tasks stay weak across seeds is what a mean ASR hides. None when the runs do not
    train the same set of tasks: their columns cannot be matched.
    """
    ms = [as_matrix(m) for m in matrices]
    if not ms or len({frozenset(m.train_order) for m in ms}) > 1:
        return None
    values: dict[str, list[Optional[float]]] = {name: [] for name in ms[0].train_order}
    for m in ms:
        last = train_order_matrix(m)[m.num_tasks - 1]
        for name, v in zip(m.train_order, last):
            values[name].append(None if math.isnan(v) else float(v))
    return {name: {"values": vs, **M.aggregate(vs)} for name, vs in values.items()}

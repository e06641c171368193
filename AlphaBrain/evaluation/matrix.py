"""matrix.json: reading, validating, writing, and mapping its columns to the training order.

The file (written by the evaluator into `results/eval_cl/<run_id>/matrix.json`):

    {
      "run_id": "qwengr00t_mir_libero_goal",          # optional (null)
      "suite": "libero_goal",                        # optional (null)
      "train_order": ["task a", "task b", ...],      # the stream's task names, in training order (stream.json)
      "eval_tasks": ["task b", "task a", ...],       # column j of "success" = eval_tasks[j]
      "checkpoints": ["task_0_id0_steps_5000", ...], # row k of "success" = checkpoints[k]; optional
      "success": [[0.9, null, ...], ...],            # fractions in 0..1, null = not evaluated
      "initial": [0.0, 0.02, ...],                   # optional: the untrained policy, one per eval task
      "trials": 50                                   # optional: rollouts per cell (int or a matrix of them)
    }

Columns are matched to the training order by task NAME, never by position or
number. Rows are placed by the `task_<k>_` prefix of the checkpoint names
when every name has one; otherwise T rows are the T task checkpoints in
order and a single row is the final checkpoint (a `--last-only` evaluation).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from AlphaBrain.evaluation import metrics as M
from AlphaBrain.utils.atomic_io import atomic_write_json, atomic_write_text
from AlphaBrain.utils.errors import UserError, did_you_mean

MATRIX_FILE = "matrix.json"
METRICS_FILE = "metrics.json"
REQUIRED_KEYS = ("train_order", "eval_tasks", "success")
KNOWN_KEYS = ("run_id", "suite", "train_order", "eval_tasks", "checkpoints", "success", "initial", "trials")

_CKPT_TASK = re.compile(r"^task_(\d+)(?:_|$)")


@dataclass(frozen=True, eq=False)
class SuccessMatrix:
    """A validated matrix.json. `success` is rows x len(eval_tasks), as in the file, NaN = not evaluated."""

    train_order: list[str]
    eval_tasks: list[str]
    success: np.ndarray
    checkpoints: Optional[list[str]] = None
    run_id: Optional[str] = None
    suite: Optional[str] = None
    initial: Optional[np.ndarray] = None
    trials: Any = None
    source: Optional[str] = field(default=None, compare=False)
    row_positions: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Built directly rather than by matrix_from_dict: place the rows the same way.
        object.__setattr__(self, "success", np.asarray(self.success, dtype=float))
        if not self.row_positions:
            object.__setattr__(
                self, "row_positions",
                _row_positions(self.checkpoints, self.success.shape[0], len(self.train_order), _where(self.source)),
            )

    @property
    def num_tasks(self) -> int:
        return len(self.train_order)

    @property
    def num_checkpoints(self) -> int:
        return int(self.success.shape[0])

    @property
    def last_only(self) -> bool:
        """True when the only evaluated checkpoint is the final one of a stream of 2 or more tasks."""
        return self.num_tasks > 1 and self.row_positions == [self.num_tasks - 1]

    @property
    def extra_eval_tasks(self) -> list[str]:
        """Evaluated tasks that are not in the training stream (kept aside, not used by the metrics)."""
        trained = set(self.train_order)
        return [t for t in self.eval_tasks if t not in trained]

    @property
    def missing_eval_tasks(self) -> list[str]:
        """Trained tasks with no column in the matrix (their column is NaN in train order)."""
        evaluated = set(self.eval_tasks)
        return [t for t in self.train_order if t not in evaluated]

    def to_dict(self) -> dict:
        """The matrix.json content (NaN written as null); the keys are `write_matrix`'s arguments."""
        out: dict[str, Any] = {
            "run_id": self.run_id,
            "suite": self.suite,
            "train_order": list(self.train_order),
            "eval_tasks": list(self.eval_tasks),
            "checkpoints": list(self.checkpoints) if self.checkpoints is not None else None,
            "success": _to_jsonable(self.success),
        }
        if self.initial is not None:
            out["initial"] = _to_jsonable(self.initial)
        if self.trials is not None:
            out["trials"] = self.trials
        return out


MatrixLike = Union[SuccessMatrix, dict, str, os.PathLike]


def _to_jsonable(arr: np.ndarray) -> list:
    return [_to_jsonable(x) for x in arr] if arr.ndim > 1 else [None if math.isnan(v) else float(v) for v in arr]


def _where(source: Optional[str]) -> str:
    return f"{source}: " if source else ""


def _names(d: dict, key: str, where: str) -> list[str]:
    value = d[key]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise UserError(f"{where}{key!r} must be a list of non-empty task names (strings), got {value!r:.200}.")
    seen: set[str] = set()
    dups = sorted({v for v in value if v in seen or seen.add(v)})
    if dups:
        raise UserError(f"{where}{key!r} names a task more than once: {', '.join(dups)}. Task names must be unique.")
    return list(value)


def _rates(value: Any, what: str, where: str, columns: list[str]) -> np.ndarray:
    """A list of rates (fractions or null) for the given columns, as a float array with NaN."""
    if not isinstance(value, list) or len(value) != len(columns):
        n = len(value) if isinstance(value, list) else type(value).__name__
        raise UserError(f"{where}{what} must be a list of {len(columns)} rates (one per eval task), got {n}.")
    out = np.full(len(columns), np.nan)
    for j, v in enumerate(value):
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise UserError(f"{where}{what}, task {columns[j]!r}: expected a rate in 0..1 or null, got {v!r}.")
        v = float(v)
        if math.isnan(v):
            continue
        if not 0.0 <= v <= 1.0:
            hint = " It looks like a percentage: divide by 100." if 1.0 < v <= 100.0 else ""
            raise UserError(
                f"{where}{what}, task {columns[j]!r}: success rates are fractions in 0..1, got {v}.{hint}"
            )
        out[j] = v
    return out


def _row_positions(checkpoints: Optional[list[str]], rows: int, t: int, where: str) -> list[int]:
    if rows > t:
        raise UserError(
            f"{where}'success' has {rows} rows but the stream has only {t} tasks: "
            "expected one row per task checkpoint at most."
        )
    if checkpoints is not None:
        parsed = [_CKPT_TASK.match(c) for c in checkpoints]
        if all(parsed):
            positions = [int(p.group(1)) for p in parsed]
            bad = [c for c, k in zip(checkpoints, positions) if k >= t]
            if bad:
                raise UserError(
                    f"{where}checkpoint {bad[0]!r} follows task {positions[checkpoints.index(bad[0])]}, "
                    f"but 'train_order' has only {t} tasks (0..{t - 1}). Is this the matrix of another run?"
                )
            if len(set(positions)) != len(positions):
                raise UserError(f"{where}two rows are for the same task checkpoint: {checkpoints}.")
            return positions
    if rows == t:
        return list(range(t))
    if rows == 1:
        return [t - 1]
    raise UserError(
        f"{where}'success' has {rows} rows for {t} tasks: expected {t} (one per task checkpoint) "
        "or 1 (the final checkpoint only, a --last-only evaluation). To give only some checkpoints, "
        "name them in 'checkpoints' as task_<k>_... (k = position in train_order)."
    )


def matrix_from_dict(d: Any, source: Optional[str] = None) -> SuccessMatrix:
    """Validate the content of a matrix.json and return it as a `SuccessMatrix`."""
    where = _where(source)
    if not isinstance(d, dict):
        raise UserError(f"{where}expected a JSON object with keys {', '.join(KNOWN_KEYS)}; got {type(d).__name__}.")
    missing = [k for k in REQUIRED_KEYS if k not in d]
    if missing:
        hints = "".join(did_you_mean(k, [x for x in d if x not in KNOWN_KEYS]) for k in missing)
        raise UserError(
            f"{where}missing key(s) {', '.join(repr(k) for k in missing)}; a matrix.json needs "
            f"{', '.join(REQUIRED_KEYS)} (and usually run_id, suite, checkpoints).{hints}"
        )
    train_order = _names(d, "train_order", where)
    eval_tasks = _names(d, "eval_tasks", where)
    if not train_order:
        raise UserError(f"{where}'train_order' is empty: it must list the stream's tasks in training order.")
    if not set(train_order) & set(eval_tasks):
        example = train_order[0]
        raise UserError(
            f"{where}no eval task matches a task of 'train_order' (columns are matched by name). "
            f"train_order starts with {example!r}, eval_tasks with {eval_tasks[0] if eval_tasks else None!r}."
            f"{did_you_mean(example, eval_tasks)} Use the task names of the run's stream.json in both."
        )

    raw = d["success"]
    if not isinstance(raw, list) or not raw:
        raise UserError(f"{where}'success' must be a non-empty list of rows (one per checkpoint).")
    rows = []
    for k, row in enumerate(raw):
        rows.append(_rates(row, f"'success' row {k}", where, eval_tasks))
    success = np.vstack(rows)

    checkpoints = d.get("checkpoints")
    if checkpoints is not None:
        checkpoints = _names(d, "checkpoints", where)
        if len(checkpoints) != len(rows):
            raise UserError(
                f"{where}'checkpoints' names {len(checkpoints)} checkpoints but 'success' has {len(rows)} rows; "
                "row k must be the checkpoint checkpoints[k]."
            )
    positions = _row_positions(checkpoints, len(rows), len(train_order), where)

    initial = d.get("initial")
    if initial is not None:
        initial = _rates(initial, "'initial'", where, eval_tasks)

    trials = d.get("trials")
    if trials is not None and not _valid_trials(trials, success.shape):
        raise UserError(
            f"{where}'trials' must be a positive integer (rollouts per cell) or a matrix of them "
            f"with the shape of 'success' {list(success.shape)}, got {trials!r:.200}."
        )

    for key in ("run_id", "suite"):
        if d.get(key) is not None and not isinstance(d[key], str):
            raise UserError(f"{where}{key!r} must be a string or null, got {d[key]!r}.")

    return SuccessMatrix(
        train_order=train_order,
        eval_tasks=eval_tasks,
        success=success,
        checkpoints=checkpoints,
        run_id=d.get("run_id"),
        suite=d.get("suite"),
        initial=initial,
        trials=trials,
        source=source,
        row_positions=positions,
    )


def _valid_trials(trials: Any, shape: tuple[int, int]) -> bool:
    def count(v: Any) -> bool:
        return v is None or (isinstance(v, int) and not isinstance(v, bool) and v > 0)

    if isinstance(trials, list):
        return len(trials) == shape[0] and all(
            isinstance(r, list) and len(r) == shape[1] and all(count(v) for v in r) for r in trials
        )
    return count(trials)


def resolve_matrix_path(path_or_dir: str | os.PathLike) -> Path:
    """The matrix.json of an eval dir, or the given file."""
    path = Path(path_or_dir)
    if path.is_dir():
        candidate = path / MATRIX_FILE
        if candidate.is_file():
            return candidate
        hint = ""
        if (path / "stream.json").is_file() or (path / "checkpoints").is_dir():
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


def metrics_json(m: MatrixLike) -> dict:
    """What goes into metrics.json: the metrics as fractions (or null), then the matrix's shape and task lists."""
    m = as_matrix(m)
    out = M.compute_metrics(train_order_matrix(m), train_order_initial(m))
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
                data[key] = _to_jsonable(arr)
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


def write_metrics(path: str | os.PathLike, m: MatrixLike) -> Path:
    """Atomically write `metrics_json(m)` to `path` (a .json file, or a dir that gets metrics.json)."""
    file = _matrix_file(path, METRICS_FILE)
    atomic_write_json(file, metrics_json(m))
    return file


def read_stream_order(stream_json: str | os.PathLike) -> list[str]:
    """Task names in training order from a run's stream.json (results/Checkpoints/<run_id>/stream.json).

    This is what the evaluator writes as `train_order`.
    """
    path = Path(stream_json)
    if path.is_dir():
        path = path / "stream.json"
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise UserError(
            f"cannot read {path}: {exc.strerror or exc}. Expected results/Checkpoints/<run_id>/stream.json."
        ) from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}).") from None
    tasks = data.get("tasks") if isinstance(data, dict) else None
    if not isinstance(tasks, list) or not all(isinstance(t, dict) and isinstance(t.get("name"), str) for t in tasks):
        raise UserError(f"{path}: expected {{\"tasks\": [{{\"name\": ...}}, ...]}} as written by the trainer.")
    return _names({"tasks": [t["name"] for t in tasks]}, "tasks", _where(str(path)))


def aggregate_runs(runs: Sequence[dict]) -> dict:
    """Mean, sample std and count of every scalar metric over several runs (e.g. seeds).

    `runs` are metric dicts (`metrics_json` or `compute_metrics` output). A None value is
    skipped and not counted: {"bwt": {"mean": ..., "std": ..., "n": 2}} when one of three runs
    was last-only. std is None when n < 2, mean is None when n = 0.
    """
    return {key: M.aggregate([r.get(key) for r in runs]) for key in M.SCALAR_METRICS}

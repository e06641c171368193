"""The content of a matrix.json: the `SuccessMatrix` type and its validation.

The file (written by the evaluator into `results/eval_cl/<run_id>/matrix.json`):

    {
      "run_id": "qwengr00t_mir_libero_goal",          # optional (null)
      "suite": "libero_goal",                        # optional (null)
      "train_order": ["task a", "task b", ...],      # the stream's task names, in training order (stream.json)
      "eval_tasks": ["task b", "task a", ...],       # column j of "success" = eval_tasks[j]
      "checkpoints": ["task_0_id0_steps_5000", ...], # row k of "success" = checkpoints[k]; optional
      "success": [[0.9, null, ...], ...],            # fractions in 0..1, null = not evaluated
      "initial": [0.0, 0.02, ...],                   # optional: the untrained policy, one per eval task
      "trials": 50,                                  # optional: rollouts per cell (int or a matrix of them)
      "task_conditioned": "weight_masks"             # optional: each cell ran with its task's own parameters
    }

Columns are matched to the training order by task NAME, never by position or
number. Rows are placed by the `task_<k>_` prefix of the checkpoint names
when every name has one; otherwise T rows are the T task checkpoints in
order and a single row is the final checkpoint (a `--last-only` evaluation).

Reading and writing the file, and the train-order views and metrics built on a
`SuccessMatrix`, are in `matrix.py`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from AlphaBrain.utils.errors import UserError, did_you_mean
from AlphaBrain.utils.text import unique_task_names

REQUIRED_KEYS = ("train_order", "eval_tasks", "success")
KNOWN_KEYS = ("run_id", "suite", "train_order", "eval_tasks", "checkpoints", "success", "initial", "trials",
              "task_conditioned")

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
    task_conditioned: Optional[str] = None  # PackNet masks / per-task adapters: the task was known at test time
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
            "success": rates_to_json(self.success),
        }
        if self.initial is not None:
            out["initial"] = rates_to_json(self.initial)
        if self.trials is not None:
            out["trials"] = self.trials
        if self.task_conditioned is not None:
            out["task_conditioned"] = self.task_conditioned
        return out


def rates_to_json(arr: np.ndarray) -> list:
    """A rate array as nested lists of floats, NaN as None (null in JSON)."""
    return [rates_to_json(x) for x in arr] if arr.ndim > 1 else [None if math.isnan(v) else float(v) for v in arr]


def _where(source: Optional[str]) -> str:
    return f"{source}: " if source else ""


def _names(d: dict, key: str, where: str) -> list[str]:
    return unique_task_names(d[key], repr(key), where)


def _optional_string(d: dict, key: str, where: str) -> Optional[str]:
    value = d.get(key)
    if value is not None and not isinstance(value, str):
        raise UserError(f"{where}{key!r} must be a string or null, got {value!r}.")
    return value


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

    return SuccessMatrix(
        train_order=train_order,
        eval_tasks=eval_tasks,
        success=success,
        checkpoints=checkpoints,
        run_id=_optional_string(d, "run_id", where),
        suite=_optional_string(d, "suite", where),
        initial=initial,
        trials=trials,
        task_conditioned=_optional_string(d, "task_conditioned", where),
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

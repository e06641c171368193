"""Learning curves: each task's success along its own training, for LIBERO's FWT and AUC.

`run_cl_eval.sh --curve` evaluates, for the k-th task of the train order, these checkpoints on
task k only (the curve points c_{k,0..m}):

    start  the checkpoint after the previous task (task 0 has none: no checkpoint of the untrained
           policy is written; `initial` of matrix.json stands in for it when given)
    mid    every mid-task checkpoint of task k, `mid_task/task_<k>_id<id>_steps_<N>` (trainer.save_interval)
    end    the checkpoint after task k (the diagonal cell of the matrix)

Each point is an ordinary cell of the evaluation (its own cell file, see shards.py), so a curve
resumes and shards like the matrix; `curve.json` beside matrix.json gathers them:

    {"run_id", "suite", "trials", "train_order",
     "tasks": [{"task": name, "points": [{"checkpoint", "kind", "task_step", "global_step",
                                           "success_rate"}, ...]}, ...],
     "notes": [why a task's curve is short or missing]}

A task with no mid-task point has no curve (FWT and AUC stay null): trainer.keep_last prunes old
mid-task checkpoints, so a learning curve needs training with trainer.keep_last=0.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from AlphaBrain.utils.atomic_io import atomic_write_json
from AlphaBrain.utils.errors import UserError

CURVE_FILE = "curve.json"
KEEP_ALL_HINT = "train with trainer.save_interval=N trainer.keep_last=0 to keep every mid-task checkpoint"


@dataclass(frozen=True)
class CurvePoint:
    checkpoint: str   # a name resolve_checkpoint accepts: a task-end prefix or mid_task/<prefix>
    kind: str         # "start" | "mid" | "end"
    task_step: int    # optimizer steps already taken on this task
    global_step: int


def _save_interval(run) -> int:
    from omegaconf import OmegaConf

    if not run.config_file.is_file():
        return 0
    return int(OmegaConf.select(OmegaConf.load(run.config_file), "trainer.save_interval", default=0) or 0)


def plan_curve(run_dir: Path, train_order: list[str]) -> tuple[list[list[CurvePoint]], list[str]]:
    """The curve points of every task of the run (train order) and notes on the tasks whose points are missing."""
    from AlphaBrain.runs import RunDir
    from AlphaBrain.runs.layout import MID_TASK_DIR

    run = RunDir(run_dir)
    ends = {c.position: c for c in run.checkpoints()}
    mids = run.mid_task_checkpoints()
    interval = _save_interval(run)
    plan, notes = [], []
    for k, name in enumerate(train_order):
        if k not in ends:
            notes.append(f"T{k} {name}: no task-end checkpoint, no curve")
            plan.append([])
            continue
        before = ends.get(k - 1)
        start_step = before.global_step if before is not None else 0
        points = [] if before is None else [CurvePoint(before.prefix.name, "start", 0, start_step)]
        own = [c for c in mids if c.position == k]
        points += [CurvePoint(f"{MID_TASK_DIR}/{c.prefix.name}", "mid", int(c.state.get("task_step", 0)),
                              c.global_step) for c in own]
        end = ends[k]
        points.append(CurvePoint(end.prefix.name, "end", end.global_step - start_step, end.global_step))
        # The trainer saves when global_step % interval == 0, except on a task's last step.
        expected = sum(1 for g in range(start_step + 1, end.global_step) if interval and g % interval == 0)
        if not own:
            why = "trainer.save_interval was 0" if not interval else "pruned by trainer.keep_last"
            notes.append(f"T{k} {name}: no mid-task checkpoint ({why}), so no curve; {KEEP_ALL_HINT}")
        elif len(own) < expected:
            notes.append(f"T{k} {name}: {len(own)} of {expected} mid-task checkpoints left (trainer.keep_last "
                         f"pruned the others); the curve has only these points; {KEEP_ALL_HINT}")
        plan.append(points)
    return plan, notes


def curve_cells(plan: list[list[CurvePoint]], train_order: list[str]) -> list[tuple[str, str]]:
    """The (checkpoint, task) cells the curves need: each task's points, on that task only."""
    return [(p.checkpoint, train_order[k]) for k, points in enumerate(plan) for p in points]


def build_curve(plan: list[list[CurvePoint]], notes: list[str], cells: dict, matrix: dict) -> dict:
    """curve.json's content from the evaluated cells ({(checkpoint, task): cell file})."""
    tasks = []
    for k, points in enumerate(plan):
        name = matrix["train_order"][k]
        rows = [{**asdict(p), "success_rate": cells[(p.checkpoint, name)].get("success_rate")} for p in points]
        tasks.append({"task": name, "points": rows})
    return {"run_id": matrix.get("run_id"), "suite": matrix.get("suite"), "trials": matrix.get("trials"),
            "train_order": list(matrix["train_order"]), "tasks": tasks, "notes": notes}


def write_curve(out_dir: Path, curve: dict) -> Path:
    atomic_write_json(out_dir / CURVE_FILE, curve)
    return out_dir / CURVE_FILE


def curve_file_for(path_or_dir: str | os.PathLike) -> Path:
    """curve.json beside a matrix.json (or in an evaluation dir)."""
    path = Path(path_or_dir)
    return (path.parent if path.suffix == ".json" else path) / CURVE_FILE


def load_curve(path_or_dir: str | os.PathLike) -> Optional[dict]:
    """The curve.json of an evaluation (dir, its matrix.json or the curve.json itself); None if it has none."""
    path = Path(path_or_dir)
    file = path if path.name == CURVE_FILE else curve_file_for(path)
    if not file.is_file():
        return None
    try:
        curve = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"Cannot read {file}: {exc}. Delete it and rerun the evaluation with --curve.") from None
    if not isinstance(curve, dict) or not isinstance(curve.get("tasks"), list):
        raise UserError(f"{file} is not a curve file (no \"tasks\" list); rerun the evaluation with --curve.")
    return curve


def matching_curve(path_or_dir: str | os.PathLike, matrix) -> Optional[dict]:
    """The evaluation's curve.json if it was made for this matrix (same run, suite and trials), else None.

    `matrix` is a matrix.json dict or a SuccessMatrix. A curve left by an evaluation with other
    parameters is ignored rather than mixed in.
    """
    curve = load_curve(path_or_dir)
    if curve is None:
        return None
    get = matrix.get if isinstance(matrix, dict) else lambda key: getattr(matrix, key, None)
    for key in ("run_id", "suite", "trials"):
        if get(key) is not None and curve.get(key) is not None and curve.get(key) != get(key):
            return None
    return curve


def curve_values(curve: Optional[dict], train_order: list[str],
                 initial: Optional[dict] = None) -> Optional[list[Optional[list[float]]]]:
    """Per task of `train_order`: its curve's success values, or None when it has no mid-task point.

    `initial` ({task name: untrained success}) gives task 0 its start point, which no checkpoint
    provides. A point that was not evaluated is NaN (the metric is then null).
    """
    if curve is None:
        return None
    by_name = {t.get("task"): t.get("points") or [] for t in curve["tasks"] if isinstance(t, dict)}
    out: list[Optional[list[float]]] = []
    for k, name in enumerate(train_order):
        points = by_name.get(name, [])
        if not any(p.get("kind") == "mid" for p in points):
            out.append(None)
            continue
        values = [math.nan if p.get("success_rate") is None else float(p["success_rate"]) for p in points]
        has_start = any(p.get("kind") == "start" for p in points)
        if k == 0 and not has_start and initial and initial.get(name) is not None:
            values.insert(0, float(initial[name]))
        out.append(values)
    return out

"""One evaluation over several machines: which shard evaluates which cell, and the cell files.

The cells of an evaluation are its (checkpoint, task) pairs in one fixed order: checkpoints in
train order, each with the suite's tasks in suite order. Shard K of N evaluates the K-th of N
contiguous blocks of that list (block sizes differ by at most one), so N shards cover every cell
exactly once, and each shard loads few checkpoints (and starts few policy servers).

Each cell's result is its own file, written atomically by the one shard that owns the cell:

    <output-base>/<checkpoint>/cells/<task>.json
    {"checkpoint": ..., "task": ..., "shard": "K/N",
     "params": {"suite": ..., "trials": <requested>, "max_steps": <cap or null>
                [, "replan_every": <actions per policy query, when not the default 4>]},
     "success_rate": ..., "trials": ..., "successes": ..., "seeds": [...], "episodes": [...],
     "requested_trials": ...}                       (a failed cell: success_rate null, trials 0, "error")

Everything but checkpoint, task, shard and params is the cell's `results.json` entry. A cell file
counts only with the same params as the evaluation asking for it.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from AlphaBrain.evaluation.rollout import cell_done
from AlphaBrain.utils.atomic_io import atomic_write_json

Shard = tuple[int, int]
UNSHARDED: Shard = (0, 1)
CELL_KEYS = ("checkpoint", "task", "shard", "params")
SHOWN_MISSING = 4  # cells named in the "missing cells" error


DEFAULT_REPLAN_EVERY = 4  # actions executed from each predicted chunk before the policy is asked again


@dataclass(frozen=True)
class CellParams:
    """What makes a cell file reusable by an evaluation."""

    suite: str
    trials: int
    max_steps: Optional[int]
    replan_every: int = DEFAULT_REPLAN_EVERY

    def as_json(self) -> dict:
        """The cell file's "params". The default replan_every is left out, so the cell files written
        before it was a parameter (all made with the default) stay reusable."""
        params = asdict(self)
        if self.replan_every == DEFAULT_REPLAN_EVERY:
            del params["replan_every"]
        return params

    @property
    def defaults(self) -> bool:
        """Made with what an evaluation without cell files (an older results.json) always used."""
        return self.max_steps is None and self.replan_every == DEFAULT_REPLAN_EVERY


def shard_range(num_cells: int, shard: Shard) -> range:
    """Indices of the cells shard K of N evaluates: the K-th of N contiguous, near-equal blocks."""
    k, n = shard
    return range(k * num_cells // n, (k + 1) * num_cells // n)


def shard_of(index: int, num_cells: int, n: int) -> int:
    """The shard (of n) that owns cell `index`."""
    return next(k for k in range(n) if index in shard_range(num_cells, (k, n)))


def shard_label(shard: Shard) -> str:
    return f"{shard[0]}/{shard[1]}"


def log_name(stem: str, shard: Shard) -> str:
    """`eval.log` for an unsharded run, `eval.shard-K-of-N.log` for shard K of N (no two shards share a log)."""
    return f"{stem}.log" if shard == UNSHARDED else f"{stem}.shard-{shard[0]}-of-{shard[1]}.log"


def cell_path(out_dir: Path, checkpoint: str, task: str) -> Path:
    return out_dir / checkpoint / "cells" / f"{task}.json"


def write_cell(out_dir: Path, checkpoint: str, task: str, entry: dict, params: CellParams, shard: Shard) -> dict:
    """Atomically write one cell's file from its results.json `entry`; returns the file's content."""
    cell = {"checkpoint": checkpoint, "task": task, "shard": shard_label(shard), "params": params.as_json(), **entry}
    atomic_write_json(cell_path(out_dir, checkpoint, task), cell)
    return cell


def read_cell(out_dir: Path, checkpoint: str, task: str, params: CellParams) -> Optional[dict]:
    """The cell file, if there is one with these params (an unreadable one counts as absent)."""
    try:
        cell = json.loads(cell_path(out_dir, checkpoint, task).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(cell, dict) or cell.get("params") != params.as_json():
        return None
    return cell


def results_entry(cell: dict) -> dict:
    """The results.json entry of a cell file."""
    return {key: value for key, value in cell.items() if key not in CELL_KEYS}


def cell_reusable(cell: Optional[dict], trials: int) -> bool:
    """A cell file that needs no new evaluation: no failure, every trial done."""
    return cell is not None and cell_done(results_entry(cell), trials)


def shard_counts(out_dir: Path, order: list[tuple[str, str]]) -> set[int]:
    """The N of the shards that wrote the cell files there are (whatever their params)."""
    counts = set()
    for checkpoint, task in order:
        try:
            label = str(json.loads(cell_path(out_dir, checkpoint, task).read_text()).get("shard", ""))
        except (OSError, ValueError, AttributeError):
            continue
        match = re.fullmatch(r"(\d+)/(\d+)", label)
        if match:
            counts.add(int(match.group(2)))
    return counts


def missing_message(out_dir: Path, order: list[tuple[str, str]], missing: list[int], n: Optional[int]) -> str:
    """One line: how many cells are missing, the first few, and the shards that own them."""
    shown = ", ".join(f"{order[i][0]}/{order[i][1]}" for i in missing[:SHOWN_MISSING])
    more = f" and {len(missing) - SHOWN_MISSING} more" if len(missing) > SHOWN_MISSING else ""
    if n is None:
        owners = ("no cell file says how many shards there are: run every shard (--shard K/N) with the same flags, "
                  "or give --shard K/N with --merge-only to name the owners")
    else:
        ks = sorted({shard_of(i, len(order), n) for i in missing})
        owners = (f"owned by shard{'s' if len(ks) > 1 else ''} {', '.join(f'{k}/{n}' for k in ks)}: run "
                  f"{'them' if len(ks) > 1 else 'it'} with the same flags (--trials, --max-steps, "
                  f"--replan-every, --suite, --last-only, --curve), then --merge-only again")
    other = sum(cell_path(out_dir, *order[i]).exists() for i in missing)
    stale = (f" ({other} of them have a cell file made with other --trials, --max-steps, --replan-every or suite)"
             if other else "")
    return f"{len(missing)} of {len(order)} cells are missing in {out_dir}{stale}: {shown}{more}; {owners}."

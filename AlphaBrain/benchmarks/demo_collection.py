"""What the simulated benchmarks' demo generators share: the parameter-stamped cache, and collecting
successful scripted-expert episodes of one task.

A generator writes the parameters that made its dataset into `meta/info.json` under its marker key;
`check_cached` reuses a dataset made with the same parameters and refuses to overwrite anything else.
`collect_successes` runs attempt 0, 1, 2, ... (each attempt a job whose seeds depend only on its index,
so the result does not depend on the pool size) until `needed` episodes succeeded, and gives up with a
DatasetError when the expert fails too often.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from AlphaBrain.utils.errors import DatasetError

MIN_ATTEMPTS = 10  # judge an expert's success rate only after this many attempts
MIN_SUCCESS_RATE = 0.3  # below this (after MIN_ATTEMPTS attempts) the expert is deemed broken


def check_cached(root: Path, params: dict[str, Any], marker: str, label: str) -> bool:
    """True if `root` holds the dataset `params` describe; DatasetError if it holds something else."""
    if not root.exists():
        return False
    try:
        found = json.loads((root / "meta" / "info.json").read_text()).get(marker)
    except (OSError, ValueError):
        found = None
    if found == params:
        return True
    if found is None:
        what = f"something that is not a generated {label} dataset"
    else:
        diff = sorted(k for k in set(params) | set(found) if params.get(k) != found.get(k))
        what = f"a {label} dataset generated with other parameters (differing: {', '.join(diff)})"
    raise DatasetError(f"{root} already holds {what}. Pass --force (force=True) to regenerate it there, "
                       "or choose another --out (out_dir).")


def collect_successes(
    job: Callable[[int], tuple],
    run: Callable[[tuple], Optional[dict]],
    pool: Any,
    needed: int,
    max_attempts: int,
    bar: Any,
    failure_message: Callable[[int, int], str],
) -> tuple[list[dict], int, int]:
    """(successful episodes in attempt order, attempts made, failures).

    `job(a)` is the picklable argument of attempt `a`; `run(job)` returns an episode or None (failure);
    `pool` (or None: run here) maps `run` over jobs in order. `failure_message(successes, attempts)` is
    the DatasetError's text when the expert does not succeed often enough.
    """
    episodes: list[dict] = []
    attempt, failures = 0, 0
    while len(episodes) < needed:
        batch = needed - len(episodes)
        if attempt > 0:  # expect a few failures: ask for a little more than the remainder
            batch += max(1, batch // 5)
        batch = min(batch, max_attempts - attempt)
        jobs = [job(a) for a in range(attempt, attempt + batch)]
        for ep in pool.imap(run, jobs) if pool is not None else map(run, jobs):
            attempt += 1
            if ep is None:
                failures += 1
            elif len(episodes) < needed:
                episodes.append(ep)
            bar.set_postfix(ok=len(episodes), failed=failures, refresh=False)
            bar.update(len(episodes) - bar.n)
        too_rare = attempt >= MIN_ATTEMPTS and (attempt - failures) / attempt < MIN_SUCCESS_RATE
        if len(episodes) < needed and (too_rare or attempt >= max_attempts):
            raise DatasetError(failure_message(attempt - failures, attempt))
    return episodes, attempt, failures

"""What the simulated benchmarks' demo generators share in collecting episodes: the parameter-stamped
cache, one env per worker process, recording one expert episode, and collecting the successful episodes
of one task.

A generator writes the parameters that made its dataset into `meta/info.json` under its marker key;
`check_cached` reuses a dataset made with the same parameters and refuses to overwrite anything else.
`worker_env` keeps one env alive per process (the last one asked for); `record_episode` steps it with
an expert until a short tail after the first success. `collect_successes` runs attempt 0, 1, 2, ...
(each attempt a job whose seeds depend only on its index, so the result does not depend on the pool
size) until `needed` episodes succeeded, and gives up with a DatasetError when the expert fails too often.
Writing the episodes as a dataset: demo_generation.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

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


_WORKER_ENVS: dict[tuple, tuple[Any, Callable[[Any], None]]] = {}


def _close(env: Any) -> None:
    env.close()


def worker_env(key: tuple, make: Callable[[], Any], close: Callable[[Any], None] = _close) -> Any:
    """This process's env for `key`, made by `make()` when another key (or none) was asked for last:
    one env is alive at a time. `close(env)` closes it (when the key changes, or in close_worker_envs)."""
    if key not in _WORKER_ENVS:
        close_worker_envs()
        _WORKER_ENVS[key] = (make(), close)
    return _WORKER_ENVS[key][0]


def close_worker_envs() -> None:
    for env, close in _WORKER_ENVS.values():
        close(env)
    _WORKER_ENVS.clear()


def record_episode(
    env: Any,
    obs: dict[str, Any],
    act: Callable[[dict[str, Any]], np.ndarray],
    cameras: Sequence[str],
    max_steps: int,
    tail_steps: int,
    label: Optional[Callable[[], np.ndarray]] = None,
) -> Optional[dict[str, np.ndarray]]:
    """Step `env` from its reset observation `obs` with `act(obs)`; the recorded episode, or None if it failed.

    The episode ends `tail_steps` steps after the first success (or at `max_steps`). Per frame it holds
    the images (obs["images"], in the order of `cameras`), the state and the action:
    `{camera: uint8[T, H, W, 3], ..., "state": [T, S], "action": [T, A]}`. The action is the one executed,
    or `label()` called right after `act` when given (e.g. the expert's action before its noise).
    """
    images: list[list[np.ndarray]] = [[] for _ in cameras]
    states, actions = [], []
    end, succeeded = max_steps, False
    for step in range(1, max_steps + 1):
        action = act(obs)
        for frames, img in zip(images, obs["images"]):
            frames.append(img)
        states.append(obs["state"])
        actions.append(action if label is None else label())
        obs, success, _ = env.step(action)
        if success and not succeeded:
            succeeded, end = True, min(step + tail_steps, max_steps)
        if step >= end:
            break
    if not succeeded:
        return None
    episode = {cam: np.stack(frames) for cam, frames in zip(cameras, images)}
    episode.update(state=np.stack(states), action=np.stack(actions))
    return episode


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

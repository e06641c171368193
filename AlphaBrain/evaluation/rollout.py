"""Closed-loop rollouts: a policy drives a simulated task until success or the step limit.

The policy predicts an action chunk; the first `replan_every` actions are executed
before it is asked again. One call of `evaluate_cell` runs every trial of one
(checkpoint, task) cell in a worker process and returns per-episode results; a
policy that answers with the wrong action shape fails the cell with the reason,
it does not stop the evaluation.
"""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional

import numpy as np


@dataclass
class EpisodeResult:
    seed: int
    success: bool
    steps: int
    seconds: float


@dataclass
class CellJob:
    """All trials of one task for one checkpoint."""

    checkpoint: str            # checkpoint prefix, e.g. task_0_id0_steps_300
    task_index: int            # position of the task in the suite
    task_name: str
    instruction: str
    seeds: list[int]
    max_steps: int


class PolicyShapeError(RuntimeError):
    """The policy's answer is not an action chunk this environment can execute."""


def check_chunk(actions: Any, action_dim: int) -> np.ndarray:
    chunk = np.asarray(actions, dtype=np.float32)
    if chunk.ndim == 1:
        chunk = chunk[None]
    if chunk.ndim != 2 or chunk.shape[1] != action_dim or chunk.shape[0] < 1:
        raise PolicyShapeError(
            f"policy returned actions of shape {tuple(np.shape(actions))}; expected (horizon, {action_dim})"
        )
    if not np.all(np.isfinite(chunk)):
        raise PolicyShapeError("policy returned non-finite actions")
    return chunk


def run_episode(env: Any, infer: Callable[[dict], dict], instruction: str, seed: int, max_steps: int,
                replan_every: int, action_dim: int, task_name: str | None = None) -> EpisodeResult:
    start = time.perf_counter()
    obs = env.reset(seed)
    queue: list[np.ndarray] = []
    for step in range(1, max_steps + 1):
        if not queue:
            request = {"images": obs["images"], "state": obs["state"], "prompt": instruction}
            if task_name:  # a task-conditioned policy picks the task's mask / adapter by it
                request["task_name"] = task_name
            reply = infer(request)
            queue = list(check_chunk(reply.get("actions"), action_dim)[:replan_every])
        action = np.clip(queue.pop(0), -1.0, 1.0)
        # Only the frame before the next policy query is looked at: the others are not rendered.
        obs, success, done = env.step(action, render=not queue)
        if success:
            return EpisodeResult(seed, True, step, time.perf_counter() - start)
        if done:
            break
    return EpisodeResult(seed, False, step, time.perf_counter() - start)


# ----------------------------------------------------------------- worker side
_WORKER: dict[str, Any] = {}


def init_worker(run_dir: str, suite_name: str, mode: str, ports: list[int], replan_every: int,
                worker_ids: Any = None) -> None:
    """Per-process set-up: one torch thread (workers already use every core), the suite, a worker id.

    `worker_ids` is a queue handing out ids (a process pool) or an int; worker i talks to the policy
    server on `ports[i]` in server mode. Torch is optional: a simulator-only interpreter
    (LIBERO_PYTHON) runs workers in server mode without it.
    """
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    from AlphaBrain.benchmarks import get_suite

    worker_id = worker_ids if isinstance(worker_ids, int) else worker_ids.get() if worker_ids is not None else 0
    port = ports[worker_id] if ports else None
    _WORKER.update(run_dir=run_dir, suite=get_suite(suite_name), mode=mode, port=port,
                   replan_every=replan_every, worker_id=worker_id, policy=None, checkpoint=None)


# Cells are handed out only once every policy server answers its health check (servers.py waits up to
# START_TIMEOUT_S for a model to load), so a worker's connection takes milliseconds; a server that is
# gone by then has died, and its cell should fail in seconds, not minutes.
CONNECT_TIMEOUT_S = 20.0


def _policy_for(checkpoint: str):
    """In-process: load the checkpoint once per worker. Server mode: a client of this worker's server."""
    if _WORKER["checkpoint"] == checkpoint and _WORKER["policy"] is not None:
        return _WORKER["policy"]
    old = _WORKER.get("policy")
    if old is not None and hasattr(old, "close"):
        old.close()
    if _WORKER["mode"] == "server":
        from AlphaBrain.deployment.policy_client import PolicyClient

        policy = PolicyClient(port=_WORKER["port"], timeout=CONNECT_TIMEOUT_S)
    else:
        from AlphaBrain.deployment.policy import load_policy

        # evaluate_run checked the run's statistics once, before any worker started.
        policy = load_policy(_WORKER["run_dir"], checkpoint, allow_foreign_statistics=True)
    _WORKER.update(policy=policy, checkpoint=checkpoint)
    return policy


def _drop_policy() -> None:
    policy = _WORKER.get("policy")
    _WORKER.update(policy=None, checkpoint=None)
    if policy is not None and hasattr(policy, "close"):
        try:
            policy.close()
        except Exception:  # already broken
            pass


def evaluate_cell(job: CellJob) -> dict:
    """Run every trial of one cell; never raises (a failure is reported in the result)."""
    out = {"checkpoint": job.checkpoint, "task": job.task_name, "worker": _WORKER.get("worker_id", 0)}
    env = None
    try:
        policy = _policy_for(job.checkpoint)
        meta = policy.get_server_metadata() if hasattr(policy, "get_server_metadata") else policy.metadata
        image_size = tuple(meta.get("image_size") or (64, 64))
        env = _WORKER["suite"].make_env(job.task_name, image_size=image_size)
        episodes = [
            run_episode(env, policy.infer, job.instruction, seed, job.max_steps, _WORKER["replan_every"],
                        int(meta["action_dim"]), job.task_name)
            for seed in job.seeds
        ]
        out["episodes"] = [asdict(e) for e in episodes]
    except PolicyShapeError as exc:
        out["error"] = str(exc)
    except Exception as exc:  # a dead server, a crashed env: report, let the other cells go on
        out["error"] = f"{type(exc).__name__}: {exc}"
        out["traceback"] = traceback.format_exc(limit=5)
        if _WORKER.get("mode") == "server":  # the connection may be gone: reconnect for the next cell
            _drop_policy()
    finally:
        if env is not None:
            env.close()  # one env alive per worker: no OpenGL context mix-ups
    return out


def summarize(cell: dict, trials: int) -> dict:
    """The results.json entry of a finished cell."""
    if "error" in cell:
        return {"success_rate": None, "trials": 0, "error": cell["error"]}
    episodes = cell["episodes"]
    return {
        "success_rate": float(np.mean([e["success"] for e in episodes])) if episodes else None,
        "trials": len(episodes),
        "successes": int(sum(e["success"] for e in episodes)),
        "seeds": [e["seed"] for e in episodes],
        "episodes": episodes,
        "requested_trials": trials,
    }


def cell_done(entry: Optional[dict], trials: int) -> bool:
    return bool(entry) and entry.get("error") is None and entry.get("trials", 0) >= trials

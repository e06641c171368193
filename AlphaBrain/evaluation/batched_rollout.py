"""Batched rollouts (--envs-per-worker M): one worker steps M environments in lockstep, one policy call for all.

A `CellGroup` is one or more cells of one checkpoint; their trials are queued in cell order and
M slots play them. Each slot owns an environment (remade only when its next trial is of another
task), its trial's seed and its own action-chunk queue. Every round, the slots whose queue is
empty are asked for in ONE `infer_batch` call, then every slot executes one action. A slot whose
episode ends takes the next queued trial.

Nothing of a trial depends on M or on which slot or batch it lands in: the env is reset with the
trial's own seed, the chunk queue starts empty, and the episode ends by the rules of
`rollout.run_episode`. So a policy whose batched forward gives each row what a forward of that
row alone gives yields exactly the episodes of M = 1 (a CPU forward of several rows may round the
last bit differently; an episode balanced on a success threshold is the only thing that notices).
"""

from __future__ import annotations

import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import numpy as np

from AlphaBrain.evaluation.rollout import (
    _WORKER, CellJob, EpisodeResult, PolicyShapeError, _drop_policy, _policy_for, check_chunk,
)


@dataclass
class CellGroup:
    """Cells of one checkpoint evaluated together by one worker with `envs` environments in lockstep."""

    cells: list[CellJob]
    envs: int

    @classmethod
    def from_dict(cls, data: dict) -> "CellGroup":
        return cls([CellJob(**c) for c in data["cells"]], int(data["envs"]))


def group_cells(cells: list[CellJob], envs: int, workers: int) -> list[CellGroup]:
    """Enough cells per group to fill `envs` slots, but at least one group per worker while cells last."""
    trials = max(1, max((len(c.seeds) for c in cells), default=1))
    size = max(1, min(-(-envs // trials), -(-len(cells) // max(workers, 1))))
    return [CellGroup(cells[i:i + size], envs) for i in range(0, len(cells), size)]


@dataclass
class _Slot:
    env: Any = None
    env_task: Optional[str] = None
    cell: int = -1
    trial: int = -1
    obs: Any = None
    queue: list = field(default_factory=list)
    steps: int = 0
    start: float = 0.0


def _infer_many(policy: Any, observations: list[dict]) -> list[dict]:
    batch = getattr(policy, "infer_batch", None)
    return batch(observations) if callable(batch) else [policy.infer(o) for o in observations]


def run_lockstep(make_env, infer_many, cells: list[CellJob], envs: int, replan_every: int,
                 action_dim: int, done: dict[int, list[Optional[EpisodeResult]]]) -> int:
    """Play every trial of `cells` with `envs` slots; results go into done[cell][trial]. Returns the policy calls.

    `done` is filled as episodes end, so the caller keeps what finished when something fails.
    """
    pending = [(c, k) for c, cell in enumerate(cells) for k in range(len(cell.seeds))]
    pending.reverse()  # pop() from the end = cell order
    slots = [_Slot() for _ in range(min(envs, len(pending)))]
    calls = 0

    def start_next(slot: _Slot) -> bool:
        if not pending:
            return False
        slot.cell, slot.trial = pending.pop()
        cell = cells[slot.cell]
        if slot.env_task != cell.task_name:
            if slot.env is not None:
                slot.env.close()
                slot.env = None
            slot.env, slot.env_task = make_env(cell.task_name), cell.task_name
        slot.start = time.perf_counter()
        slot.obs, slot.queue, slot.steps = slot.env.reset(cell.seeds[slot.trial]), [], 0
        return True

    try:
        active = [s for s in slots if start_next(s)]
        while active:
            needy = [s for s in active if not s.queue]
            if needy:
                replies = infer_many([{"images": s.obs["images"], "state": s.obs["state"],
                                       "prompt": cells[s.cell].instruction, "task_name": cells[s.cell].task_name}
                                      for s in needy])
                calls += len(needy)
                for s, reply in zip(needy, replies):
                    s.queue = list(check_chunk(reply.get("actions"), action_dim)[:replan_every])
            still = []
            for s in active:
                action = np.clip(s.queue.pop(0), -1.0, 1.0)
                s.obs, success, finished = s.env.step(action, render=not s.queue)  # a frame only before a query
                s.steps += 1
                cell = cells[s.cell]
                if success or finished or s.steps >= cell.max_steps:
                    done[s.cell][s.trial] = EpisodeResult(cell.seeds[s.trial], bool(success), s.steps,
                                                          time.perf_counter() - s.start)
                    if not start_next(s):
                        continue
                still.append(s)
            active = still
    finally:
        for s in slots:
            if s.env is not None:
                s.env.close()
    return calls


def evaluate_cells(group: CellGroup) -> list[dict]:
    """`rollout.evaluate_cell` for a group of cells played in lockstep; one result dict per cell, never raises.

    A failure fails the group's cells that had not finished every trial; finished ones keep their episodes.
    """
    cells = group.cells
    done: dict[int, list[Optional[EpisodeResult]]] = {c: [None] * len(cell.seeds) for c, cell in enumerate(cells)}
    outs = [{"checkpoint": c.checkpoint, "task": c.task_name, "worker": _WORKER.get("worker_id", 0)} for c in cells]
    error: dict[str, str] = {}
    try:
        checkpoints = {c.checkpoint for c in cells}
        if len(checkpoints) > 1:
            raise ValueError(f"a cell group spans several checkpoints: {sorted(checkpoints)}")
        policy = _policy_for(cells[0].checkpoint)
        meta = policy.get_server_metadata() if hasattr(policy, "get_server_metadata") else policy.metadata
        image_size = tuple(meta.get("image_size") or (64, 64))
        run_lockstep(lambda task: _WORKER["suite"].make_env(task, image_size=image_size),
                     lambda observations: _infer_many(policy, observations), cells, group.envs,
                     _WORKER["replan_every"], int(meta["action_dim"]), done)
    except PolicyShapeError as exc:
        error["error"] = str(exc)
    except Exception as exc:  # a dead server, a crashed env: report, let the other cells go on
        error.update(error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=5))
        if _WORKER.get("mode") == "server":  # the connection may be gone: reconnect for the next group
            _drop_policy()
    for c, out in enumerate(outs):
        if all(e is not None for e in done[c]):
            out["episodes"] = [asdict(e) for e in done[c]]
        else:
            out.update(error)
    return outs


def failed_cells(job: Any, worker: int, error: str) -> Any:
    """The result(s) of a job (a CellJob or a CellGroup) that its worker never finished."""
    cells = job.cells if isinstance(job, CellGroup) else [job]
    outs = [{"checkpoint": c.checkpoint, "task": c.task_name, "worker": worker, "error": error} for c in cells]
    return outs if isinstance(job, CellGroup) else outs[0]

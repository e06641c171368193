"""A rollout worker in another interpreter (LIBERO_PYTHON): CellJobs in on stdin, results out, one JSON line each.

A CellGroup (--envs-per-worker > 1) comes in as one line too and goes out as one line, a list of results.

Started by `worker_pool.RemotePool`; not meant to be run by hand. It imports
only numpy, the simulator and the policy client (no torch): the policy runs
in the evaluating interpreter's policy servers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def _plain(value):
    """numpy scalars (a simulator's success flag) as plain JSON values."""
    return value.item() if hasattr(value, "item") else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker-id", type=int, required=True)
    parser.add_argument("--init", required=True, help="JSON: run_dir, suite, mode, ports, replan_every")
    args = parser.parse_args(argv)
    # Results go to a private copy of stdout; anything the simulator prints lands in the log (stderr).
    results = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    from AlphaBrain.evaluation.batched_rollout import CellGroup, evaluate_cells
    from AlphaBrain.evaluation.rollout import CellJob, evaluate_cell, init_worker

    init = json.loads(args.init)
    init_worker(init["run_dir"], init["suite"], init["mode"], init["ports"], init["replan_every"], args.worker_id)
    for line in sys.stdin:
        if line.strip():
            job = json.loads(line)
            result = evaluate_cells(CellGroup.from_dict(job)) if "cells" in job else evaluate_cell(CellJob(**job))
            results.write(json.dumps(result, default=_plain) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

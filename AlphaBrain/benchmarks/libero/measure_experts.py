"""Measure the scripted experts on the evaluation init states (what a policy is tested on).

    python -m AlphaBrain.benchmarks.libero.measure_experts                       # every expert, init states 0-9
    python -m AlphaBrain.benchmarks.libero.measure_experts --tasks put_the_wine_bottle_on_the_rack --init-states 3

Per task: one LiberoEnv (32 x 32, nothing rendered: the experts read the simulator), trials run in
order from init state k with expert noise seed k, as the test of each expert does. Prints one line per
trial and a table (successes / trials, steps to success mean / max).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Optional

from AlphaBrain.utils.errors import unknown_name


def run_expert(task: str, init_states: list[int], log=print) -> list[Optional[int]]:
    """Steps to success per init state (None: failed within the suite's step limit)."""
    from AlphaBrain.benchmarks.libero.env import LiberoEnv
    from AlphaBrain.benchmarks.libero.experts import make_expert
    from AlphaBrain.benchmarks.libero.tasks import suite_task_specs

    spec = next(s for s in suite_task_specs("libero_goal") if s.bddl_name == task)
    env = LiberoEnv(spec, image_size=(32, 32))
    out: list[Optional[int]] = []
    try:
        for k in init_states:
            t0 = time.time()
            env.reset(k)
            expert = make_expert(task, seed=k)
            expert.reset(env)
            done = success = False
            while not done:
                _, success, done = env.step(expert.act(env), render=False)
            out.append(env.steps if success else None)
            log(f"{task} init state {k}: {'success' if success else 'FAILED'} after {env.steps} steps "
                f"({time.time() - t0:.0f} s)")
    finally:
        env.close()
    return out


def main(argv: Optional[list[str]] = None) -> int:
    from AlphaBrain.benchmarks.libero.experts import SCRIPTED_TASKS

    p = argparse.ArgumentParser(prog="python -m AlphaBrain.benchmarks.libero.measure_experts",
                                description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=list(SCRIPTED_TASKS), help="LIBERO-Goal task names (default: all)")
    p.add_argument("--init-states", nargs="+", type=int, default=list(range(10)), help="default: 0 1 ... 9")
    args = p.parse_args(argv)
    for task in args.tasks:
        if task not in SCRIPTED_TASKS:
            raise unknown_name("LIBERO-Goal task with a scripted expert (--tasks)", task, SCRIPTED_TASKS)
    rows = []
    for task in args.tasks:
        steps = run_expert(task, args.init_states)
        ok = [s for s in steps if s is not None]
        mean = f"{sum(ok) / len(ok):.1f} / {max(ok)}" if ok else "-"
        rows.append(f"| {task.replace('_', ' ')} | {len(ok)}/{len(steps)} | {mean} |")
    print("| Task | Successes | Steps to success (mean / max) |\n|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""LIBERO environment throughput: env steps/s with rendering, and the time of an evaluated episode.

For one task of each suite, image size and render mode ("exact": LIBERO's default pixels;
"fast": no multisampling/reflections; "lowpoly": fast + simplified visual meshes; see
AlphaBrain/benchmarks/libero/render.py) it measures,
in one run:
  make       seconds to build the env (BDDL -> MJCF -> compiled model, init states, GL context)
  reset      seconds of one reset: hard reset (model rebuilt, as LIBERO evaluates), init state,
             10 no-op wait steps (only the last one rendered)
  steps/s    env steps per second with both cameras rendered (fastest of --repeats runs of --steps)
  physics    steps/s without rendering (controller + 25 MuJoCo substeps per step), same env
and derives, assuming the policy answers instantly:
  episode    reset + the suite's step limit x step time (a failed trial runs to the limit)
  50 trials  make + 50 x episode: one task-checkpoint cell of a production evaluation (one worker)

    python bench/bench_libero_env.py [--suites libero_goal,libero_10] [--sizes 128,224] [--steps 20] [--repeats 3]

The machine this runs on may be shared: only numbers measured side by side in one run compare.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from AlphaBrain.benchmarks.libero.tasks import MAX_STEPS, NUM_WAIT_STEPS, suite_task_specs  # noqa: E402

SUITES = ["libero_spatial", "libero_object", "libero_goal", "libero_10"]


def _steps(env, n: int, rng: np.random.Generator) -> float:
    """Seconds for n steps of small random actions (the episode is restarted if it ends)."""
    start = time.perf_counter()
    for _ in range(n):
        if env.steps >= env.max_steps:
            env.reset(0)
        env.step(np.concatenate([rng.uniform(-0.3, 0.3, 6), [-1.0]]))
    return time.perf_counter() - start


def measure(suite: str, task: int, size: int, mode: str, steps: int, repeats: int, physics: bool) -> dict:
    from AlphaBrain.benchmarks.libero.env import LiberoEnv

    spec = suite_task_specs(suite)[task]
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    env = LiberoEnv(spec, image_size=(size, size), render_mode=mode)
    make = time.perf_counter() - start
    try:
        resets, first = [], None
        for seed in range(2):
            start = time.perf_counter()
            obs = env.reset(seed)
            resets.append(time.perf_counter() - start)
            first = obs["images"] if first is None else first
        _steps(env, 3, rng)  # warm-up
        step = min(_steps(env, steps, rng) for _ in range(repeats)) / steps
        phys = None
        if physics:
            env._render_state.skip_frames = True  # robosuite still runs its camera observables: no GL work
            try:
                phys = min(_steps(env, steps, rng) for _ in range(repeats)) / steps
            finally:
                env._render_state.skip_frames = False
    finally:
        env.close()
    limit = MAX_STEPS[suite]
    episode = min(resets) + limit * step
    return {"suite": suite, "task": spec.bddl_name, "size": size, "mode": mode, "make": make,
            "reset": min(resets), "step": step, "physics": phys, "limit": limit, "episode": episode,
            "cell50": make + 50 * episode, "images": first}


def print_pixel_diffs(rows: list[dict]) -> None:
    """What the fast settings change: the first observation (init state 0) of both modes, same env history."""
    by_key = {(r["suite"], r["size"], r["mode"]): r["images"] for r in rows}
    lines = []
    for (suite, size, mode), imgs in by_key.items():
        ref = by_key.get((suite, size, "exact"))
        if mode == "exact" or ref is None:
            continue
        for cam, a, b in zip(("agentview", "wrist"), imgs, ref):
            d = np.abs(a.astype(np.int16) - b.astype(np.int16))
            lines.append(f"| {suite:14s} | {size:4d} | {mode:7s} | {cam:9s} | {int(d.max()):7d} | {d.mean():8.2f} "
                         f"| {100 * (d.max(-1) > 8).mean():10.1f} |")
    if lines:
        print("\nPixels vs exact (init state 0 after the wait steps):\n")
        print(f"| {'suite':14s} | {'size':>4s} | {'render':7s} | {'camera':9s} | {'max abs':>7s} | {'mean abs':>8s} "
              f"| {'% px > 8':>10s} |")
        print("|----------------|------|---------|-----------|---------|----------|------------|")
        print("\n".join(lines))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suites", default=",".join(SUITES))
    ap.add_argument("--task", type=int, default=0, help="task index measured in each suite")
    ap.add_argument("--sizes", default="128,224")
    ap.add_argument("--modes", default="exact,fast")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    suites = [s for s in args.suites.split(",") if s]
    sizes = [int(s) for s in args.sizes.split(",") if s]
    modes = [m for m in args.modes.split(",") if m]
    print(f"LIBERO env benchmark: both cameras, {args.steps} steps x fastest of {args.repeats}, "
          f"{NUM_WAIT_STEPS} wait steps per reset, MUJOCO_GL={os.environ.get('MUJOCO_GL')}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, {os.cpu_count()} CPUs", flush=True)
    rows = []
    for suite in suites:
        for size in sizes:
            for mode in modes:
                rows.append(measure(suite, args.task, size, mode, args.steps, args.repeats,
                                    physics=(size == sizes[0] and mode == modes[0])))
                r = rows[-1]
                print(f"  measured {suite} {size}px {mode}: {1 / r['step']:.1f} steps/s", file=sys.stderr, flush=True)
    head = (f"| {'suite':14s} | {'size':>4s} | {'render':7s} | {'steps/s':>7s} | {'ms/step':>7s} | {'physics steps/s':>15s} "
            f"| {'make s':>6s} | {'reset+wait s':>12s} | {'limit':>5s} | {'episode s':>9s} | {'50 trials min':>13s} |")
    print()
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    for r in rows:
        phys = f"{1 / r['physics']:.1f}" if r["physics"] else ""
        print(f"| {r['suite']:14s} | {r['size']:4d} | {r['mode']:7s} | {1 / r['step']:7.1f} | {r['step'] * 1e3:7.0f} "
              f"| {phys:>15s} | {r['make']:6.1f} | {r['reset']:12.2f} | {r['limit']:5d} | {r['episode']:9.1f} "
              f"| {r['cell50'] / 60:13.1f} |")
    print_pixel_diffs(rows)
    print("\nepisode = reset+wait + limit x ms/step (a failed trial runs to the limit; the policy's time is extra);"
          "\n50 trials = make + 50 episodes of one task in one worker; a 10-task suite x T checkpoints is 10 T cells.")


if __name__ == "__main__":
    main()

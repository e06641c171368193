"""Meta-World environment throughput on CPU: rendering cost and multi-process scaling.

Measures, in one run (the machine is noisy, so only ratios measured side by side mean anything):
  per worker   env steps/s of one MetaWorldEnv driven by the scripted expert (resets included):
               no rendering, rendering with the fast settings (no multisampling, shadows,
               reflections, skybox) and with MuJoCo's default settings, at each image size;
               the configurations are interleaved over --repeats rounds, the table shows the median
  scaling      total env steps/s of 1 and 2 worker processes, each stepping its own env
               (fast rendering, first image size), timed between a barrier and the last
               worker's end (process start-up excluded)

    python bench/bench_metaworld_env.py [--env drawer-open-v3] [--steps 300] [--sizes 64,128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from AlphaBrain.benchmarks.metaworld import MetaWorldEnv, expert_policy  # noqa: E402


def drive(env: MetaWorldEnv, steps: int, seed: int = 0) -> float:
    """Seconds for `steps` expert steps, resetting (new layout) whenever an episode ends."""
    expert = expert_policy(env.env_name)
    start = time.perf_counter()
    obs = env.reset(seed)
    for _ in range(steps):
        obs, _, done = env.step(expert.get_action(obs["full_obs"]))
        if done:
            seed += 1
            obs = env.reset(seed)
    return time.perf_counter() - start


def _worker(args) -> tuple[float, float]:
    env_name, size, steps, barrier = args
    env = MetaWorldEnv(env_name, image_size=(size, size))
    drive(env, 20)  # warm-up: contexts, caches
    barrier.wait()
    start = time.perf_counter()
    drive(env, steps)
    end = time.perf_counter()
    env.close()
    return start, end


def scaling(env_name: str, size: int, steps: int, workers: int) -> float:
    """Total env steps/s of `workers` processes stepping their own env in parallel."""
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(workers)
        with ctx.Pool(workers) as pool:
            spans = pool.map(_worker, [(env_name, size, steps, barrier)] * workers)
    start = min(s for s, _ in spans)
    end = max(e for _, e in spans)
    return workers * steps / (end - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="drawer-open-v3", help="Meta-World env name (default drawer-open-v3)")
    p.add_argument("--steps", type=int, default=300, help="env steps per timed loop (default 300)")
    p.add_argument("--sizes", default="64,128", help="comma-separated square image sizes (default 64,128)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds; median reported (default 3)")
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    configs = [("no rendering", None, True)]
    for size in sizes:
        configs += [(f"{size}x{size}, fast render", size, True), (f"{size}x{size}, default render", size, False)]
    envs = {
        name: MetaWorldEnv(args.env, image_size=(size or 64, size or 64), render=size is not None, fast_render=fast)
        for name, size, fast in configs
    }
    for env in envs.values():
        drive(env, 20)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in envs}
    for _ in range(args.repeats):
        for name, env in envs.items():
            times[name].append(drive(env, args.steps))
    for env in envs.values():
        env.close()

    rate = {name: args.steps / statistics.median(t) for name, t in times.items()}
    print(f"Meta-World {args.env}, scripted expert, {args.steps} steps x {args.repeats} rounds "
          f"(median), 1 process, {os.cpu_count()} CPU cores")
    print(f"{'configuration':<28}{'steps/s':>10}{'ms/step':>10}{'vs no render':>14}")
    base = rate["no rendering"]
    for name, r in rate.items():
        print(f"{name:<28}{r:>10.0f}{1000 / r:>10.2f}{r / base:>13.2f}x")
    for size in sizes:
        fast, default = rate[f"{size}x{size}, fast render"], rate[f"{size}x{size}, default render"]
        print(f"fast vs default render at {size}x{size}: {fast / default:.2f}x the steps/s")

    size = sizes[0]
    one = scaling(args.env, size, args.steps, 1)
    two = scaling(args.env, size, args.steps, 2)
    print()
    print(f"Worker processes, each stepping its own env ({size}x{size}, fast render)")
    print(f"{'workers':<10}{'total steps/s':>15}{'speed-up':>10}")
    print(f"{1:<10}{one:>15.0f}{1.0:>9.2f}x")
    print(f"{2:<10}{two:>15.0f}{two / one:>9.2f}x")


if __name__ == "__main__":
    main()

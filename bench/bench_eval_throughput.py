"""Evaluation throughput with batched rollouts (--envs-per-worker M) and a batching policy server (--batch-wait-ms).

Measures, in one run (the machine may be shared: only ratios measured side by side mean much):
  evaluation   one worker (in this process, as `--workers 1` runs) evaluating --trials trials of each of
               --tasks Meta-World tasks (metaworld_cl5) with the tiny model, for M = 1, 4, 16 envs per
               worker: episodes/s and policy calls/s (one call = one observation answered). Environments
               are made once per (M, task) before the clock starts: long evaluations amortize them
  policy       the same policy without simulator: 16 observations as 16 calls, and as one infer_batch
  server       --clients concurrent clients (threads, one connection each) sending --requests requests
               each to one policy server, unbatched (--batch-wait-ms 0) and batched: requests/s
The tiny model is trained here for a few steps on a synthetic stream whose shapes (1 camera, state 4,
action 4) are Meta-World's; success rates are beside the point. The GPU column repeats every row with
the policy on cuda:0 when CUDA is available.

    OMP_NUM_THREADS=1 python bench/bench_eval_throughput.py [--trials 16] [--tasks 2] [--max-steps 40]
        [--image-size 64] [--clients 16] [--requests 30] [--batch-wait-ms 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from AlphaBrain.evaluation import rollout  # noqa: E402
from AlphaBrain.evaluation.batched_rollout import CellGroup, evaluate_cells  # noqa: E402
from AlphaBrain.evaluation.rollout import CellJob, evaluate_cell, init_worker  # noqa: E402

ENVS_PER_WORKER = (1, 4, 16)
SUITE = "metaworld_cl5"


def train_tiny_run(root: Path, image_size: int) -> Path:
    from AlphaBrain.config.loader import BASE_CONFIG, load_run_config, model_overlay_path
    from AlphaBrain.dataloader.synthetic import write_synthetic_dataset
    from AlphaBrain.training.continual_learning.train import ContinualVLATrainer

    data = write_synthetic_dataset(root / "synthetic_push3", num_tasks=3, episodes_per_task=2, episode_length=20,
                                   image_size=(image_size, image_size), seed=0)
    cfg = load_run_config([BASE_CONFIG, model_overlay_path("tiny")],
                          [f"run_root_dir={root / 'runs'}", "run_id=bench", f"continual_learning.task_sequence={data}",
                           "continual_learning.steps_per_task=2", "datasets.vla_data.per_device_batch_size=4",
                           f"framework.tiny.image_size={image_size}"])
    return Path(ContinualVLATrainer(cfg).train())


class _PrebuiltEnvs:
    """The suite, with envs made before timing and handed out again (reset() re-seeds each episode)."""

    def __init__(self, suite, image_size: int, per_task: int, tasks: list[str]):
        self.suite = suite
        self.free = {t: [suite.make_env(t, image_size=(image_size, image_size)) for _ in range(per_task)] for t in tasks}

    def make_env(self, task: str, image_size=None):
        env = self.free[task].pop()
        env.close = lambda: self.free[task].append(env)  # back to the pool, not destroyed
        return env


def eval_throughput(run: Path, device: str, args) -> dict[int, tuple[float, float]]:
    """M -> (episodes/s, policy calls/s)."""
    from AlphaBrain.benchmarks import get_suite
    from AlphaBrain.deployment.policy import load_policy

    suite = get_suite(SUITE)
    tasks = suite.tasks[: args.tasks]
    jobs = [CellJob("last", i, t.name, t.instruction, [suite.eval_seed(i, k) for k in range(args.trials)],
                    args.max_steps) for i, t in enumerate(tasks)]
    init_worker(str(run), SUITE, "inprocess", [], args.replan_every, 0)
    rollout._WORKER.update(policy=load_policy(run, "last", device=device), checkpoint="last")
    envs = _PrebuiltEnvs(suite, args.image_size, max(ENVS_PER_WORKER), [t.name for t in tasks])
    rollout._WORKER["suite"] = envs
    out = {}
    for m in ENVS_PER_WORKER:
        start = time.perf_counter()
        cells = [evaluate_cell(job) for job in jobs] if m == 1 else evaluate_cells(CellGroup(jobs, m))
        seconds = time.perf_counter() - start
        episodes = [e for c in cells for e in c["episodes"]]
        calls = sum(-(-e["steps"] // args.replan_every) for e in episodes)  # a chunk per replan_every steps
        out[m] = (len(episodes) / seconds, calls / seconds)
    for pool in envs.free.values():
        for env in pool:
            type(env).close(env)
    return out


def policy_throughput(run: Path, device: str, args, batch: int = 16, rounds: int = 20) -> tuple[float, float]:
    """Policy calls/s without simulator: `batch` observations one call each, and all in one infer_batch."""
    from AlphaBrain.deployment.policy import load_policy

    policy = load_policy(run, "last", device=device)
    rng = np.random.default_rng(1)
    obs = [{"images": [rng.integers(0, 256, (args.image_size, args.image_size, 3), dtype=np.uint8)],
            "state": rng.uniform(-0.5, 0.5, 4).astype(np.float32), "prompt": "pull the drawer open"}
           for _ in range(batch)]
    policy.infer_batch(obs)  # warm-up
    start = time.perf_counter()
    for _ in range(rounds):
        for o in obs:
            policy.infer(o)
    one = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(rounds):
        policy.infer_batch(obs)
    return batch * rounds / one, batch * rounds / (time.perf_counter() - start)


def server_throughput(run: Path, device: str, wait_ms: float, args) -> tuple[float, dict]:
    """requests/s of --clients concurrent clients against one server; and its /stats."""
    from AlphaBrain.deployment.policy import load_policy
    from AlphaBrain.deployment.policy_client import PolicyClient
    from AlphaBrain.deployment.policy_server import PolicyServer

    policy = load_policy(run, "last", device=device)
    rng = np.random.default_rng(0)
    obs = [{"images": [rng.integers(0, 256, (args.image_size, args.image_size, 3), dtype=np.uint8)],
            "state": rng.uniform(-0.5, 0.5, 4).astype(np.float32), "prompt": "pull the drawer open"}
           for _ in range(args.clients)]
    server = PolicyServer(policy, port=0, batch_wait_ms=wait_ms)
    barrier = threading.Barrier(args.clients + 1)

    def client(c: int) -> None:
        with PolicyClient(port=handle.port, timeout=30) as pc:
            pc.infer(obs[c])  # connected and warm
            barrier.wait()
            for _ in range(args.requests):
                pc.infer(obs[c])

    with server.start_in_thread() as handle, ThreadPoolExecutor(args.clients) as pool:
        futures = [pool.submit(client, c) for c in range(args.clients)]
        barrier.wait()
        start = time.perf_counter()
        for f in futures:
            f.result()
        seconds = time.perf_counter() - start
        stats = server.stats
    return args.clients * args.requests / seconds, stats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=16, help="trials per task (default 16: fills M = 16)")
    p.add_argument("--tasks", type=int, default=2, help="Meta-World tasks of metaworld_cl5 (default 2)")
    p.add_argument("--max-steps", type=int, default=40, help="steps per episode (default 40)")
    p.add_argument("--replan-every", type=int, default=4, help="actions executed per chunk (default 4, as cl_eval)")
    p.add_argument("--image-size", type=int, default=64, help="camera frames and model input, square (default 64)")
    p.add_argument("--clients", type=int, default=16, help="concurrent server clients (default 16)")
    p.add_argument("--requests", type=int, default=30, help="requests per client (default 30)")
    p.add_argument("--batch-wait-ms", type=float, default=2.0, help="the batched server's setting (default 2)")
    args = p.parse_args()

    devices = {"CPU": "cpu", "GPU": "cuda:0" if torch.cuda.is_available() else None}
    with tempfile.TemporaryDirectory() as tmp:
        run = train_tiny_run(Path(tmp), args.image_size)
        rows: dict[str, dict[str, str]] = {}
        for column, device in devices.items():
            if device is None:
                continue
            ev = eval_throughput(run, device, args)
            for m, (eps, calls) in ev.items():
                rows.setdefault(f"evaluation, M = {m}: episodes/s", {})[column] = f"{eps:.2f}"
                rows.setdefault(f"evaluation, M = {m}: policy calls/s", {})[column] = (
                    f"{calls:.1f} ({calls / ev[1][1]:.2f}x M = 1)")
            single, batched16 = policy_throughput(run, device, args)
            rows.setdefault("policy alone (no simulator), 16 observations one call each: calls/s", {})[column] = (
                f"{single:.1f}")
            rows.setdefault("policy alone (no simulator), 16 observations in one infer_batch: calls/s", {})[column] = (
                f"{batched16:.1f} ({batched16 / single:.2f}x)")
            base, _ = server_throughput(run, device, 0.0, args)
            batched, stats = server_throughput(run, device, args.batch_wait_ms, args)
            rows.setdefault(f"server, {args.clients} clients, unbatched: requests/s", {})[column] = f"{base:.1f}"
            rows.setdefault(f"server, {args.clients} clients, --batch-wait-ms {args.batch_wait_ms:g}: requests/s",
                            {})[column] = (f"{batched:.1f} ({batched / base:.2f}x; {stats['requests']} requests in "
                                           f"{stats['forwards']} forwards)")
    print(f"Tiny model, {SUITE} ({args.tasks} tasks x {args.trials} trials, {args.max_steps} steps, "
          f"{args.image_size}x{args.image_size}, replan every {args.replan_every}), one worker; "
          f"{os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}")
    print()
    print("| measurement | CPU | GPU |")
    print("|---|---|---|")
    for name, cells in rows.items():
        print(f"| {name} | {cells['CPU']} | {cells.get('GPU', 'n/a (no GPU)')} |")


if __name__ == "__main__":
    main()

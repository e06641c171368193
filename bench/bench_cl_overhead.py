"""Training step time of every registered CL algorithm, as a ratio to ER (small model, CPU).

Steady state of the second task, where replay / penalties are active:
  1. every method trains task 0 for --warmup steps (fills its memory, computes its Fisher, ...;
     also warms up the allocator), and its state is snapshot: weights, JSON and tensor state;
  2. each repeat restores that snapshot (through state_dict, exactly as a resume does) and trains
     task 1 for --steps + 1 steps. The time of steps 1..--steps comes from optimizer-step
     timestamps, so step 0 (first batch, new DataLoader) and the task-end work (Fisher, buffer fill)
     are not counted;
  3. methods are interleaved within each repeat, in a rotated order, so that machine noise hits all
     alike. Noise only ever adds time, so the table's ms/step is the fastest repeat (as timeit
     reports); the median is shown beside it.

MIR is measured at its defaults, with the refresh interval that run_cl_train.sh --algo mir uses
(50), and in per_step mode (50 candidates scored at every step, every replay slot filled by rank).
Amortized MIR refreshes its cache at the first step of the task and then every interval steps, so the
timed steps 1..N hold N // interval refreshes: keep --steps a multiple of both intervals (200
default) or MIR's amortized cost is misstated.

    python bench/bench_cl_overhead.py [--steps 200] [--batch 16] [--repeats 2] [--methods er mir ewc]

With the 9 algorithms registered when it was written, the default run takes about 2.5 minutes on
2 CPU cores (3.6 minutes with 3 repeats); --methods er mir times just those (plus MIR's refresh-50 row).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_trainer_overhead import bench_dataset, make_trainer  # noqa: E402  (same folder)

from AlphaBrain.training.continual_learning.algorithms import (  # noqa: E402
    MIR,
    algorithm_names,
    build_cl_algorithm,
    get_algorithm_class,
)
from AlphaBrain.training.continual_learning.train import ContinualVLATrainer  # noqa: E402

MIR_RECIPE_INTERVAL = 50  # what run_cl_train.sh --algo mir sets
# The paper's retrieval: 50 candidates scored every step, every replay slot filled by rank (top_k >= n).
MIR_PER_STEP = ("continual_learning.algorithm.mir_mode=per_step", "continual_learning.algorithm.mir_candidate_size=50",
                "continual_learning.algorithm.mir_top_k=50")


@dataclass
class Method:
    label: str
    algo: str
    overrides: tuple[str, ...] = ()
    trainer: ContinualVLATrainer | None = None
    snapshot: dict = field(default_factory=dict)
    ms_per_step: list[float] = field(default_factory=list)
    refresh_ms: list[float] = field(default_factory=list)  # MIR only: time of each cache refresh


def methods_to_run(names: list[str]) -> list[Method]:
    out = []
    for name in names:
        out.append(Method(name, name))
        if name == "mir":
            out.append(Method(f"mir (refresh {MIR_RECIPE_INTERVAL})", "mir",
                              (f"continual_learning.algorithm.mir_refresh_interval={MIR_RECIPE_INTERVAL}",)))
            out.append(Method("mir (per_step 50)", "mir", MIR_PER_STEP))
    return out


def prepare(method: Method, root: Path, data: Path, args: argparse.Namespace, index: int) -> None:
    """Train task 0 briefly and keep the state every timed repeat starts from."""
    trainer = make_trainer(root, data, method.algo, args.warmup, args.batch, args.buffer, run_id=f"m{index}",
                           overrides=("continual_learning.save_checkpoint_per_task=false", *method.overrides))
    trainer._train_task(0)
    trainer.stream.steps_per_task = args.steps + 1  # task 1: step 0 + the timed steps
    algo = trainer.algorithm
    method.trainer = trainer
    method.snapshot = {
        "weights": {k: v.detach().clone() for k, v in trainer.unwrapped.state_dict().items()},
        "state": json.loads(json.dumps(algo.state_dict())),
        "tensors": {k: v.detach().clone() for k, v in algo.tensor_state_dict().items()},
    }


def restore(method: Method) -> None:
    """A fresh algorithm loaded from the snapshot, as the trainer builds one on resume."""
    trainer, snap = method.trainer, method.snapshot
    acc = trainer.accelerator
    trainer.unwrapped.load_state_dict(snap["weights"])
    trainer.algorithm = build_cl_algorithm(trainer.cfg, seed=trainer.seed, rank=acc.process_index,
                                           world_size=acc.num_processes)
    trainer.algorithm.load_state_dict(snap["state"])
    trainer.algorithm.load_tensor_state_dict(snap["tensors"])


def time_task_1(method: Method, steps: int) -> float:
    """Milliseconds per optimizer step over steps 1..steps of task 1."""
    restore(method)
    stamps: list[float] = []
    handle = register_optimizer_step_post_hook(lambda *_: stamps.append(time.perf_counter()))
    try:
        method.trainer._train_task(1)
    finally:
        handle.remove()
    if len(stamps) != steps + 1:
        raise RuntimeError(f"{method.label}: expected {steps + 1} optimizer steps, saw {len(stamps)}.")
    algo = method.trainer.algorithm
    if isinstance(algo, MIR) and algo.refresh_count:
        method.refresh_ms += [1000.0 * algo.refresh_seconds / algo.refresh_count] * algo.refresh_count
    return 1000.0 * (stamps[-1] - stamps[0]) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    without_lora = [n for n in algorithm_names() if not get_algorithm_class(n).requires_lora]  # the tiny CNN has no LoRA
    parser.add_argument("--steps", type=int, default=200, help="timed steps of task 1 per repeat (default 200)")
    parser.add_argument("--warmup", type=int, default=5, help="task-0 steps before the snapshot (default 5)")
    parser.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats (default 2)")
    parser.add_argument("--buffer", type=int, default=200, help="buffer_size_per_task of every method that has one")
    parser.add_argument("--methods", nargs="+", default=None, metavar="NAME",
                        help=f"registered algorithms to time (default: {' '.join(without_lora)}, every one but the "
                             "LoRA-only ones, which the tiny model cannot train); "
                             "er is always included")
    args = parser.parse_args()
    known = algorithm_names()
    names = args.methods or without_lora
    unknown = sorted(set(names) - set(known))
    if unknown:
        parser.error(f"unknown method(s) {', '.join(unknown)}; registered: {', '.join(known)}")
    names = ["er"] + [n for n in names if n != "er"]
    if args.steps < 2 or args.repeats < 1 or args.warmup < 1:
        parser.error("--steps must be >= 2, --repeats and --warmup >= 1")

    methods = methods_to_run(names)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = bench_dataset(tmp / "data")
        for i, method in enumerate(methods):
            prepare(method, tmp / "runs", data, args, i)
        for r in range(args.repeats):
            shift = r % len(methods)
            for method in methods[shift:] + methods[:shift]:
                method.ms_per_step.append(time_task_1(method, args.steps))

    er, er_median = min(methods[0].ms_per_step), statistics.median(methods[0].ms_per_step)
    load = os.getloadavg()
    print(f"\nTiny VLA (models/tiny.yaml), 64x64 images, batch {args.batch}, buffer {args.buffer}/task; "
          f"task 1 steps 1..{args.steps} x {args.repeats} repeats, {torch.get_num_threads()} threads, "
          f"load average {load[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'method':<24}{'ms/step':>10}{'ratio to ER':>14}{'median ms':>12}{'median ratio':>15}")
    for method in methods:
        best, med = min(method.ms_per_step), statistics.median(method.ms_per_step)
        print(f"{method.label:<24}{best:>10.1f}{best / er:>14.3f}{med:>12.1f}{med / er_median:>15.3f}")
    for method in methods:
        algo = method.trainer.algorithm
        if not isinstance(algo, MIR):
            continue
        if method.refresh_ms and not algo.per_step:
            # A noise-robust view of the amortized cost: one refresh's time spread over its interval.
            refresh = statistics.median(method.refresh_ms)
            print(f"{method.label}: a refresh takes {refresh:.1f} ms (= {refresh / er:.2f} ER steps, "
                  f"{len(method.refresh_ms)} refreshes); spread over {algo.refresh_interval} steps that is "
                  f"+{100 * refresh / algo.refresh_interval / er:.2f} % per step")
        if args.steps % algo.refresh_interval and not algo.per_step:
            print(f"note: {method.label}: {args.steps} timed steps are not a multiple of the refresh interval "
                  f"{algo.refresh_interval}, so its amortized refresh cost is misstated.")


if __name__ == "__main__":
    main()

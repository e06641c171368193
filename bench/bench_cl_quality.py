"""Quality of CL methods on the built-in simulated benchmark: ASR / BWT / F, mean ± std over seeds.

For every (method, seed) it runs exactly what a user runs — `run_cl_train.sh` then
`run_cl_eval.sh` (the full T x T matrix in the simulator) — with the same
stream, steps, batch, memory size and evaluation seeds for every method, and
times each phase. Finished phases are skipped on a re-run (training resumes from
its last task checkpoint, evaluation skips evaluated cells), so an interrupted
benchmark continues where it stopped. Prints a table and writes it, with the
per-run numbers, to `<out>/summary.{json,md}`.

    python bench/bench_cl_quality.py                                   # sequential, er, multitask x 3 seeds
    python bench/bench_cl_quality.py --methods all --seeds 0 1 2       # every registered method
    python bench/bench_cl_quality.py --steps 300 --trials 5 --seeds 0  # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from AlphaBrain.evaluation.matrix import aggregate_runs, load_matrix, metrics_json  # noqa: E402
from AlphaBrain.evaluation.metrics import format_percent, format_pp  # noqa: E402
from AlphaBrain.training.continual_learning.algorithms import algorithm_names, get_algorithm_class  # noqa: E402
from AlphaBrain.utils.atomic_io import atomic_write_text  # noqa: E402

SCRIPTS = REPO / "scripts" / "run_continual_learning_scripts"
DEFAULT_METHODS = ["sequential", "er", "multitask"]
# Every method in the zoo, lower bound first and upper bound last.
ALL_ORDER = ["sequential", "er", "mir", "agem", "derpp", "ewc", "si", "lwf", "multitask"]
# Memory settings shared by every method that has the key, so methods differ only in what they do with memory.
SHARED_MEMORY = {"buffer_size_per_task": 200, "replay_batch_ratio": 0.4}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--suite", default="metaworld_cl5", help="built-in stream (default metaworld_cl5)")
    p.add_argument("--methods", nargs="+", default=DEFAULT_METHODS,
                   help=f"CL algorithms, or 'all' (default: {' '.join(DEFAULT_METHODS)})")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds (default 0 1 2)")
    p.add_argument("--steps", type=int, default=1000, help="steps per task (default 1000, as the default job)")
    p.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--trials", type=int, default=10, help="rollouts per matrix cell (default 10)")
    p.add_argument("--workers", type=int, default=2, help="rollout worker processes (default 2)")
    p.add_argument("--out", default=None, help="summary folder (default results/bench_quality/<suite>_<steps>steps)")
    p.add_argument("--dry-run", action="store_true", help="print the commands and exit")
    p.add_argument("--summary-only", action="store_true",
                   help="run nothing: print the table from the finished runs (others are listed as missing)")
    args = p.parse_args(argv)
    known = algorithm_names()
    if args.methods == ["all"]:
        args.methods = [m for m in ALL_ORDER if m in known] + sorted(set(known) - set(ALL_ORDER))
    for m in args.methods:
        if m not in known:
            p.error(f"unknown method {m!r}; registered: {', '.join(known)}")
    return args


def algo_overrides(method: str) -> list[str]:
    keys = get_algorithm_class(method).HYPERPARAMETERS
    return [f"continual_learning.algorithm.{k}={v}" for k, v in SHARED_MEMORY.items() if k in keys]


def run_phase(cmd: list[str], log: Path, dry: bool) -> float:
    print("  $ " + " ".join(cmd), flush=True)
    if dry:
        return 0.0
    start = time.perf_counter()
    with open(log, "a") as fh:
        proc = subprocess.run(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        sys.exit(f"error: command failed (exit {proc.returncode}); see {log}")
    return time.perf_counter() - start


def run_one(args, method: str, seed: int, dataset: str, out: Path) -> dict:
    run_id = f"bench_{args.suite}_{args.steps}_{method}_s{seed}"
    record_path = out / "runs" / f"{run_id}.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {"run_id": run_id, "seconds": {}}
    log = out / "runs" / f"{run_id}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    ckpts = REPO / "results" / "Checkpoints" / run_id / "checkpoints"
    train = ["bash", str(SCRIPTS / "run_cl_train.sh"), "--model", "tiny", "--algo", method, "--dataset", dataset,
             "--run-id", run_id]
    if ckpts.is_dir() and any(ckpts.glob("*_cl_state.json")):
        train.append("--resume")
    train += ["--", f"seed={seed}", f"continual_learning.steps_per_task={args.steps}",
              f"datasets.vla_data.per_device_batch_size={args.batch}",
              f"continual_learning.replay.buffer_size_per_task={SHARED_MEMORY['buffer_size_per_task']}",
              f"continual_learning.replay.replay_batch_ratio={SHARED_MEMORY['replay_batch_ratio']}",
              *algo_overrides(method)]
    evaluate = ["bash", str(SCRIPTS / "run_cl_eval.sh"), "--run-id", run_id, "--suite", args.suite,
                "--trials", str(args.trials), "--workers", str(args.workers)]
    print(f"[{method} seed {seed}]", flush=True)
    for phase, cmd in (("train", train), ("eval", evaluate)):
        if phase in record["seconds"]:
            print(f"  {phase}: done earlier ({record['seconds'][phase]:.0f} s)")
            continue
        seconds = run_phase(cmd, log, args.dry_run)
        if not args.dry_run:
            record["seconds"][phase] = seconds
            atomic_write_text(record_path, json.dumps(record, indent=2))
    if args.dry_run:
        return record
    record["metrics"] = metrics_json(load_matrix(REPO / "results" / "eval_cl" / run_id))
    atomic_write_text(record_path, json.dumps(record, indent=2))
    return record


def finished_records(args, out: Path) -> dict[str, list[dict]]:
    """Records of the finished (method, seed) runs; the missing ones are named on stderr."""
    records = {}
    for method in args.methods:
        for seed in args.seeds:
            path = out / "runs" / f"bench_{args.suite}_{args.steps}_{method}_s{seed}.json"
            record = json.loads(path.read_text()) if path.exists() else {}
            if "metrics" in record:
                records.setdefault(method, []).append(record)
            else:
                print(f"missing: {method} seed {seed} (not finished)", file=sys.stderr)
    return records


def cell(agg: dict, key: str) -> str:
    a = agg[key]
    fmt = format_percent if key in ("asr", "diagonal_mean") else format_pp
    if a["mean"] is None:
        return "—"
    return fmt(a["mean"]) + ("" if a["std"] is None else f" ± {format_pp(a['std'])[:-3]}")


def summarize(args, records: dict[str, list[dict]]) -> str:
    lines = [f"Suite {args.suite}, {args.steps} steps/task, batch {args.batch}, {args.trials} trials per cell, "
             f"seeds {' '.join(map(str, args.seeds))}; memory {SHARED_MEMORY} where a method has it.", "",
             "| method | seeds | ASR | BWT | F | diag | train s/run | eval s/run |", "|---|---|---|---|---|---|---|---|"]
    for method, runs in records.items():
        agg = aggregate_runs([r["metrics"] for r in runs])
        train = sum(r["seconds"]["train"] for r in runs) / len(runs)
        evaluate = sum(r["seconds"]["eval"] for r in runs) / len(runs)
        lines.append(f"| {method} | {len(runs)} | {cell(agg, 'asr')} | {cell(agg, 'bwt')} | {cell(agg, 'forgetting')} | "
                     f"{cell(agg, 'diagonal_mean')} | {train:.0f} | {evaluate:.0f} |")
    lines.append("")
    lines.append("mean ± sample std over seeds; ASR and diag (success right after training each task) in %, "
                 "BWT / F / std in percentage points.")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out or REPO / "results" / "bench_quality" / f"{args.suite}_{args.steps}steps")
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    dataset = args.suite
    if args.suite.startswith("metaworld"):
        print(f"[demos] {args.suite}", flush=True)
        start = time.perf_counter()
        run_phase([sys.executable, "-m", "AlphaBrain.benchmarks.metaworld.generate", "--stream", args.suite],
                  out / "demos.log", args.dry_run)
        print(f"  demos: {time.perf_counter() - start:.0f} s (cached after the first run)")
    if args.summary_only:
        records = finished_records(args, out)
    else:
        records = {m: [run_one(args, m, s, dataset, out) for s in args.seeds] for m in args.methods}
    if args.dry_run:
        return 0
    table = summarize(args, records)
    atomic_write_text(out / "summary.md", table + "\n")
    atomic_write_text(out / "summary.json", json.dumps(
        {"settings": {k: v for k, v in vars(args).items() if k != "dry_run"}, "shared_memory": SHARED_MEMORY,
         "runs": records}, indent=2))
    print()
    print(table)
    print(f"\nwrote {out / 'summary.md'} and summary.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())

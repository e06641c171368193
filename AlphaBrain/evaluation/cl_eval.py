"""Evaluate a continual-learning run in simulation: every task checkpoint on every task of a suite.

    python -m AlphaBrain.evaluation.cl_eval --run-id <run_id> --suite metaworld_cl5 --trials 10 [--last-only]
        [--envs-per-worker M] [--curve] [--shard K/N | --merge-only]

Output, under --output-base (default results/eval_cl/<run_id>/):
    <checkpoint>/eval.log, <checkpoint>/results.json (per task: success rate, trials, seeds)
    <checkpoint>/cells/<task>.json (one per cell: its results.json entry and the parameters)
    <checkpoint>/server.log (policy-server mode)
    matrix.json, metrics.json, matrix.png
    curve.json (--curve: each task's learning curve on that task, from its mid-task checkpoints; curve.py)
Re-running skips the cells already evaluated with the same --trials, --max-steps and suite.

Several machines (Slurm job arrays): `--shard K/N` evaluates only shard K's share of the
(checkpoint, task) cells (K in 0..N-1; N contiguous blocks of the cells in train-order x suite-order,
see shards.py). Every cell is its own file, <checkpoint>/cells/<task>.json, written atomically by the
shard that owns it; a shard logs to <checkpoint>/eval.shard-K-of-N.log. Shards may run at once into
one --output-base on a shared file system: each writes only its own cells and logs, and whichever
finds every cell file present when it is done writes results.json, matrix.json, metrics.json and
matrix.png (two at once write the same content). `--merge-only` evaluates nothing and assembles those
from the cell files, or stops naming the missing cells and the shards that own them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

from tqdm import tqdm

from AlphaBrain.evaluation.batched_rollout import evaluate_cells, group_cells
from AlphaBrain.evaluation.curve import build_curve, curve_cells, matching_curve, plan_curve, write_curve
from AlphaBrain.evaluation.rollout import CellJob, cell_done, evaluate_cell, summarize
from AlphaBrain.evaluation.shards import (
    DEFAULT_REPLAN_EVERY, UNSHARDED, CellParams, Shard, cell_path, cell_reusable, log_name, missing_message,
    read_cell, results_entry, shard_counts, shard_label, shard_range, write_cell,
)
from AlphaBrain.utils.atomic_io import atomic_write_json
from AlphaBrain.utils.cli import ArgumentParser, int_arg, run_main, shard_arg
from AlphaBrain.utils.errors import UserError


def discover_checkpoints(run_dir: Path, last_only: bool) -> list[str]:
    from AlphaBrain.runs import RunDir

    run = RunDir(run_dir)
    if not run.path.is_dir():
        root = run.path.parent
        runs = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise UserError(f"No run directory {run_dir}." + (f" Runs in {root}: {', '.join(runs)}." if runs else ""))
    ckpts = run.checkpoints()
    if not ckpts:
        raise UserError(f"No complete task checkpoint in {run.checkpoint_dir}: train the run first (run_cl_train.sh).")
    run.check_trained()
    names = [c.prefix.name for c in ckpts]
    return names[-1:] if last_only else names


#: --batch-wait-ms of the policy servers of a batching evaluation: a worker's M pipelined requests arrive
#: within microseconds; the margin covers a busy machine without delaying a lone request noticeably.
BATCH_WAIT_MS = 5.0


def _log(path: Path, line: str) -> None:
    with open(path, "a") as fh:
        fh.write(f"{time.strftime('%H:%M:%S')} {line}\n")


def simulator_interpreter(suite_name: str) -> Optional[str]:
    """LIBERO_PYTHON, when a LIBERO suite is to be simulated in another interpreter; None = this one."""
    python = os.environ.get("LIBERO_PYTHON", "").strip()
    if not suite_name.startswith("libero") or not python:
        return None
    if Path(python).resolve() == Path(sys.executable).resolve():
        return None
    from AlphaBrain.evaluation.worker_pool import check_interpreter

    check_interpreter(python)
    return python


def evaluate_run(run_dir: Path, suite_name: str, trials: int, out_dir: Path, workers: int = 1,
                 last_only: bool = False, mode: str = "inprocess", port_base: int = 5694,
                 replan_every: int = DEFAULT_REPLAN_EVERY, cache_merged: bool = False, max_steps: Optional[int] = None,
                 shard: Shard = UNSHARDED, merge_only: bool = False, envs_per_worker: int = 1,
                 allow_foreign_statistics: bool = False, curve: bool = False) -> dict:
    """Evaluate this shard's cells, then assemble the matrix if every cell file is there.

    `envs_per_worker` > 1: each worker steps that many environments in lockstep and asks the
    policy for all of them in one batched call (batched_rollout.py); the results are those of 1.

    Returns {"matrix", "metrics", "missing"}: matrix and metrics are None (and `missing` lists the
    (checkpoint, task) cells still to come from other shards) when the evaluation is not complete.
    `merge_only` evaluates nothing and raises a UserError naming the missing cells.
    Statistics computed on other data than the run trained on are refused unless `allow_foreign_statistics`.
    `curve` also evaluates each task's learning curve on that task (curve.py) and writes curve.json;
    the result then has "curve_notes", why some tasks' curves are short or missing.
    """
    from AlphaBrain.benchmarks import get_suite
    from AlphaBrain.evaluation.servers import pick_ports
    from AlphaBrain.evaluation.worker_pool import make_pool

    if trials < 1 or workers < 1:
        raise UserError("--trials and --workers must be >= 1.")
    if envs_per_worker < 1:
        raise UserError(f"--envs-per-worker must be an integer >= 1, got {envs_per_worker}.")
    if max_steps is not None and max_steps < 1:
        raise UserError(f"--max-steps must be >= 1, got {max_steps}.")
    if replan_every < 1:
        raise UserError(f"--replan-every must be >= 1 (actions executed per policy query), got {replan_every}.")
    if not (shard[1] >= 1 and 0 <= shard[0] < shard[1]):
        raise UserError(f"--shard must be K/N with N >= 1 and K in 0..N-1, got {shard_label(shard)}.")
    suite = get_suite(suite_name)
    checkpoints = discover_checkpoints(run_dir, last_only)
    from AlphaBrain.runs import RunDir

    train_order = RunDir(run_dir).stream_task_names()
    unknown = [n for n in train_order if n not in {t.name for t in suite.tasks}]
    if unknown:
        raise UserError(
            f"The run was trained on tasks {unknown} that suite {suite_name} does not have "
            f"(its tasks: {', '.join(t.name for t in suite.tasks)}). Pick the suite the run was trained on."
        )
    params = CellParams(suite_name, trials, max_steps, replan_every)
    order = [(checkpoint, t.name) for checkpoint in checkpoints for t in suite.tasks]
    plan, notes = plan_curve(run_dir, train_order) if curve else ([], [])
    order += [cell for cell in dict.fromkeys(curve_cells(plan, train_order)) if cell not in set(order)]
    mine = {order[i] for i in shard_range(len(order), shard)}
    if not merge_only and mine:
        if RunDir(run_dir).statistics_file.is_file():
            # Once, here: the workers and policy servers started below load the run without checking again.
            RunDir(run_dir).check_statistics(allow_foreign_statistics)
        python = simulator_interpreter(suite_name)
        if python is not None and mode != "server":
            print(f"note: simulating in LIBERO_PYTHON={python}; the policy is served to it (--server)",
                  file=sys.stderr)
            mode = "server"
        ports = pick_ports(port_base, workers) if mode == "server" else []
        out_dir.mkdir(parents=True, exist_ok=True)
        initargs = (str(run_dir), suite_name, mode, ports, replan_every)
        with make_pool(workers, initargs, python=python, log=out_dir / log_name("workers", shard)) as pool:
            for checkpoint in dict.fromkeys(c for c, _ in order):  # task ends, then the curves' mid-task points
                tasks = [i for i, t in enumerate(suite.tasks) if (checkpoint, t.name) in mine]
                if not tasks:
                    continue
                if cache_merged:
                    cache_merged_weights(run_dir, checkpoint)
                _evaluate_checkpoint(pool, run_dir, suite, checkpoint, tasks, params, out_dir, workers, mode,
                                     ports, shard, envs_per_worker)
    cells = [read_cell(out_dir, checkpoint, task, params) for checkpoint, task in order]
    missing = [i for i, cell in enumerate(cells) if cell is None]
    if missing:
        if merge_only:
            counts = {shard[1]} if shard != UNSHARDED else shard_counts(out_dir, order)
            raise UserError(missing_message(out_dir, order, missing, counts.pop() if len(counts) == 1 else None))
        return {"matrix": None, "metrics": None, "missing": [order[i] for i in missing], "curve_notes": notes}
    matrix = {
        "run_id": run_dir.name, "suite": suite_name, "train_order": train_order,
        "eval_tasks": [t.name for t in suite.tasks], "checkpoints": checkpoints, "success": [],
        "trials": trials, "last_only": last_only,
        # per-task masks / adapters: each cell ran with its own task's (docs/continual_learning/evaluation.md)
        "task_conditioned": RunDir(run_dir).task_conditioned(),
        **({"max_steps": max_steps} if max_steps else {}),
        **({"replan_every": replan_every} if replan_every != DEFAULT_REPLAN_EVERY else {}),
    }
    return {**assemble(matrix, dict(zip(order, cells)), out_dir, (plan, notes) if curve else None),
            "curve_notes": notes}


def assemble(matrix: dict, cells: dict, out_dir: Path, curve_plan: Optional[tuple] = None) -> dict:
    """Write every checkpoint's results.json and matrix.json, metrics.json, matrix.png from the cell files.

    `curve_plan` = (plan, notes) of plan_curve: curve.json is written too. Without it, a curve.json
    of an earlier --curve evaluation with the same suite and trials still feeds metrics.json.
    Idempotent: shards that assemble at the same time write the same content (each file atomically).
    """
    from AlphaBrain.evaluation.matrix import load_matrix, metrics_json, write_matrix
    from AlphaBrain.evaluation.plots import plot_matrix_heatmap

    for checkpoint in matrix["checkpoints"]:
        results = {task: results_entry(cells[(checkpoint, task)]) for task in matrix["eval_tasks"]}
        atomic_write_json(out_dir / checkpoint / "results.json", results)
        matrix["success"].append([results[task].get("success_rate") for task in matrix["eval_tasks"]])
    write_matrix(out_dir / "matrix.json", matrix)
    loaded = load_matrix(out_dir / "matrix.json")
    if curve_plan is not None:
        write_curve(out_dir, build_curve(*curve_plan, cells, matrix))
    metrics = metrics_json(loaded, matching_curve(out_dir, matrix))
    atomic_write_json(out_dir / "metrics.json", metrics)
    plot_matrix_heatmap(loaded, out_dir / "matrix.png", title=f"{matrix['run_id']} on {matrix['suite']}")
    return {"matrix": matrix, "metrics": metrics, "missing": []}


def cache_merged_weights(run_dir: Path, checkpoint: str) -> None:
    """Merge a LoRA checkpoint once into `<prefix>_merged.pt` before the workers load it (they then read that file)."""
    from AlphaBrain.runs import RunDir, load_run_model

    run = RunDir(run_dir)
    if run.resolve_checkpoint(checkpoint).is_dir() and run.task_conditioned() is None:  # per-task adapters stay apart
        load_run_model(run.path, checkpoint, cache_merged=True, allow_foreign_statistics=True)  # evaluate_run checked


def _evaluate_checkpoint(pool, run_dir: Path, suite, checkpoint: str, tasks: list[int], params: CellParams,
                         out_dir: Path, workers: int, mode: str, ports: list[int], shard: Shard,
                         envs_per_worker: int = 1) -> None:
    """Evaluate this shard's cells (`tasks`, suite indices) of one checkpoint that have no reusable cell file."""
    from AlphaBrain.evaluation.servers import PolicyServers

    ckpt_dir = out_dir / checkpoint
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    results_path, log = ckpt_dir / "results.json", ckpt_dir / log_name("eval", shard)
    # results.json of an evaluation made before the cell files: its finished cells are kept.
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    trials, todo = params.trials, []
    for i in tasks:
        t = suite.tasks[i]
        if cell_reusable(read_cell(out_dir, checkpoint, t.name, params), trials):
            continue
        if (params.defaults and not cell_path(out_dir, checkpoint, t.name).exists()
                and cell_done(results.get(t.name), trials)):
            write_cell(out_dir, checkpoint, t.name, results[t.name], params, shard)
            continue
        todo.append(CellJob(checkpoint, i, t.name, t.instruction, [suite.eval_seed(i, k) for k in range(trials)],
                            min(t.max_steps, params.max_steps or t.max_steps)))
    if not todo:
        _log(log, f"all {len(tasks)} tasks already evaluated with {trials} trials; skipped")
        return
    _log(log, f"evaluating {checkpoint}: {len(todo)} task(s) x {trials} trials, {workers} worker(s), {mode}"
              + (f", {envs_per_worker} envs per worker" if envs_per_worker > 1 else "")
              + (f", policy servers on ports {ports}" if ports else "")
              + (f", shard {shard_label(shard)}" if shard != UNSHARDED else ""))
    # A batching worker sends its M requests at once; the server gathers them into one forward.
    servers = (PolicyServers(run_dir, checkpoint, ports, ckpt_dir / log_name("server", shard),
                             batch_wait_ms=BATCH_WAIT_MS if envs_per_worker > 1 else 0.0)
               if mode == "server" else None)
    if servers is not None:
        servers.start()
    try:
        bar = tqdm(total=len(todo), desc=f"eval {checkpoint}", dynamic_ncols=True)
        if envs_per_worker > 1:
            results_iter = _flatten(pool.imap_unordered(evaluate_cells, group_cells(todo, envs_per_worker, workers)))
        else:
            results_iter = pool.imap_unordered(evaluate_cell, todo)
        for cell in results_iter:
            if "error" in cell and servers is not None:
                # A dead server fails its worker's cell: say why (its log's tail) and start it again.
                deaths = servers.restart_dead()
                if deaths:
                    cell["error"] += "\n" + "\n".join(deaths)
            entry = summarize(cell, trials)
            write_cell(out_dir, checkpoint, cell["task"], entry, params, shard)
            if shard == UNSHARDED:  # the only writer of results.json: keep it current (other shards wait)
                results[cell["task"]] = entry
                atomic_write_json(results_path, results)
            if entry.get("error"):
                _log(log, f"{cell['task']}: FAILED: {entry['error']}")
                tqdm.write(f"[eval] {checkpoint} / {cell['task']}: failed: {entry['error']}")
            else:
                _log(log, f"{cell['task']}: {entry['successes']}/{entry['trials']} successes")
            bar.update(1)
        bar.close()
    finally:
        if servers is not None:
            servers.stop()


def _flatten(groups):
    for cells in groups:
        yield from cells


def check_model(run_dir: Path, model: str) -> None:
    """`--model` must name the framework the run was trained with."""
    from omegaconf import OmegaConf

    from AlphaBrain.config.loader import model_overlay_path

    from AlphaBrain.runs import RunDir

    wanted = str(OmegaConf.load(model_overlay_path(model)).framework.name)
    config = RunDir(run_dir).config_file
    if config.is_file():
        trained = str(OmegaConf.load(config).framework.name)
        if trained.lower() != wanted.lower():
            raise UserError(f"--model {model} ({wanted}) does not match run {run_dir.name}, trained with {trained}.")


def print_summary(matrix: dict, metrics: dict) -> None:
    from AlphaBrain.evaluation.matrix import as_matrix, format_matrix_table
    from AlphaBrain.evaluation.metrics import format_percent, format_pp

    print(format_matrix_table(as_matrix(matrix)))
    print(f"ASR {format_percent(metrics.get('asr'))}   BWT {format_pp(metrics.get('bwt'), signed=True)}   "
          f"F {format_pp(metrics.get('forgetting'))}   diagonal {format_percent(metrics.get('diagonal_mean'))}"
          "   (BWT < 0 = forgetting)")
    if matrix.get("task_conditioned"):
        print(f"task-conditioned ({matrix['task_conditioned']}): every cell ran with its own task's parameters, "
              "so these numbers assume the task is known at test time")


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="python -m AlphaBrain.evaluation.cl_eval",
        description="Evaluate every task checkpoint of a run on every task of a simulated suite (T x T success matrix).",
        epilog="Example: python -m AlphaBrain.evaluation.cl_eval --run-id default_tiny_er --suite metaworld_cl5 --trials 10",
    )
    p.add_argument("--run-id", required=True, help="run directory name under --run-root")
    p.add_argument("--model", default=None, help="model the run used (checked against the run's config.yaml)")
    p.add_argument("--run-root", default="results/Checkpoints", help="where runs live (default results/Checkpoints)")
    p.add_argument("--suite", default=None, help="evaluation suite (default: the run's stream, if it is a suite)")
    p.add_argument("--trials", type=int_arg(1), default=10, help="episodes per task and checkpoint (default 10)")
    p.add_argument("--workers", type=int_arg(1), default=1, help="parallel rollout processes (default 1)")
    p.add_argument("--last-only", action="store_true", help="evaluate only the final task checkpoint")
    p.add_argument("--curve", action="store_true",
                   help="also evaluate each task's learning curve on that task (previous task end, its mid-task "
                        "checkpoints, its end) into curve.json, for LIBERO's FWT and AUC; needs a run trained with "
                        "trainer.save_interval=N trainer.keep_last=0")
    p.add_argument("--output-base", default=None, help="results root (default results/eval_cl/<run_id>)")
    p.add_argument("--server", action="store_true", help="talk to the policy through one policy server per worker")
    p.add_argument("--port-base", type=int_arg(1, 65535), default=5694,
                   help="first policy-server port; worker i uses the i-th free port from here (taken ones are skipped)")
    p.add_argument("--cache-merged", action="store_true",
                   help="LoRA runs: write each merged checkpoint to <prefix>_merged.pt once and reuse it "
                        "(default: merge in memory in every worker, nothing written)")
    p.add_argument("--max-steps", type=int_arg(1), default=None,
                   help="cap every episode at N steps (quick pipeline checks; success rates are then not the suite's)")
    p.add_argument("--envs-per-worker", type=int_arg(1), default=1, metavar="M",
                   help="environments each worker steps in lockstep, with one batched policy call for all of "
                        "them (trials of a cell, or cells of one checkpoint); same results as 1 (default 1)")
    p.add_argument("--replan-every", type=int_arg(1), default=DEFAULT_REPLAN_EVERY,
                   help="actions executed from each predicted chunk before the policy is asked again (default "
                        f"{DEFAULT_REPLAN_EVERY}; cells evaluated with another value are not reused)")
    p.add_argument("--shard", type=shard_arg(), default=UNSHARDED, metavar="K/N",
                   help="evaluate only shard K (0..N-1) of N of the (checkpoint, task) cells, e.g. "
                        "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT; shards share --output-base and the last "
                        "to finish writes the matrix (default 0/1: every cell)")
    p.add_argument("--allow-foreign-statistics", action="store_true",
                   help="evaluate even if the run's dataset_statistics.json was computed on other data than the run "
                        "trained on (its data fingerprint differs; refused by default: success would collapse)")
    p.add_argument("--merge-only", action="store_true",
                   help="evaluate nothing: write results.json, matrix.json, metrics.json, matrix.png from the "
                        "cell files of the shards (error naming the missing cells if some are missing)")
    return p


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_main(_main, args)


def _main(args: argparse.Namespace) -> int:
    """main() after parsing: evaluate, then print the matrix and metrics."""
    from AlphaBrain.runs import RunDir

    run_dir = Path(args.run_root) / args.run_id
    if args.model:
        check_model(run_dir, args.model)
    suite = args.suite or RunDir(run_dir).stream_name(default="libero_goal")
    out = Path(args.output_base) if args.output_base else Path("results/eval_cl") / args.run_id
    result = evaluate_run(run_dir, suite, args.trials, out, workers=args.workers, last_only=args.last_only,
                          mode="server" if args.server else "inprocess", port_base=args.port_base,
                          replan_every=args.replan_every, cache_merged=args.cache_merged,
                          max_steps=args.max_steps, shard=args.shard, merge_only=args.merge_only,
                          envs_per_worker=args.envs_per_worker, curve=args.curve,
                          allow_foreign_statistics=args.allow_foreign_statistics)
    for note in result["curve_notes"]:
        print(f"note: learning curve: {note}", file=sys.stderr)
    if result["matrix"] is None:
        missing = result["missing"]
        print(f"[eval] shard {shard_label(args.shard)} done; {len(missing)} cell(s) still to come from other shards "
              f"(first: {missing[0][0]}/{missing[0][1]}): the last shard to finish writes {out / 'matrix.json'} "
              f"(or run --merge-only once all have finished)")
        return 0
    print_summary(result["matrix"], result["metrics"])
    print(f"[eval] wrote {out / 'matrix.json'}, {out / 'metrics.json'}, {out / 'matrix.png'}"
          + (f", {out / 'curve.json'}" if args.curve else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

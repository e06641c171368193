"""Continual-learning metrics (ASR, BWT, forgetting, ...) of an evaluated success matrix.

Reads results/eval_cl/<run_id>/matrix.json (or a matrix.json file), maps its columns to the
training order by task name, and prints the metrics; curve.json beside it (run_cl_eval.sh --curve)
adds LIBERO's FWT and AUC. A --last-only evaluation gives ASR only:
BWT and forgetting need a row for every per-task checkpoint.

Examples (from the repository root; `alphabrain-metrics` and
`python -m AlphaBrain.evaluation.metrics_cli` are the same command):
  python scripts/run_continual_learning_scripts/compute_cl_matrix_metrics.py results/eval_cl/qwengr00t_mir_libero_goal
  python scripts/run_continual_learning_scripts/compute_cl_matrix_metrics.py results/eval_cl/<run_id> \\
      --show-matrix --plot results/eval_cl/<run_id>/heatmap.png
  alphabrain-metrics results/eval_cl/<run_id> --json > metrics.json
  alphabrain-metrics results/eval_cl/er_seed0 --seeds results/eval_cl/er_seed1 results/eval_cl/er_seed2
  alphabrain-metrics results/eval_cl/<run_id> --report results/eval_cl/<run_id>/report.html
  alphabrain-metrics results/eval_cl/er_seed0 --seeds results/eval_cl/er_seed1 results/eval_cl/mir_seed0 \\
      results/eval_cl/mir_seed1 --report compare.html
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional

from AlphaBrain.evaluation.curve import matching_curve
from AlphaBrain.evaluation.matrix import (
    SuccessMatrix,
    aggregate_runs,
    final_per_task,
    format_matrix_table,
    load_matrix,
    metrics_json,
)
from AlphaBrain.evaluation.metrics import DESCRIPTIONS, SCALAR_METRICS, format_percent, format_value
from AlphaBrain.utils.cli import ArgumentParser, output_file, run_main
from AlphaBrain.utils.errors import UserError

CURVE_METRICS = ("fwt_libero", "auc_libero")


def build_parser() -> argparse.ArgumentParser:
    doc = __doc__.split("\n\nExamples")
    parser = ArgumentParser(
        prog="alphabrain-metrics",
        description=doc[0],
        epilog="Examples" + doc[1] + "\nMetric definitions: docs/evaluation/metrics.md",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("matrix", nargs="?", metavar="EVAL_DIR_OR_MATRIX_JSON",
                        help="results/eval_cl/<run_id> (holding matrix.json) or a matrix.json file")
    parser.add_argument("--show-matrix", action="store_true",
                        help="also print the success matrix in %% (rows and columns in train order, — = not evaluated)")
    parser.add_argument("--json", action="store_true",
                        help="print only the metrics.json content (fractions, null = not computable); "
                             "with --seeds: {\"runs\": [...], \"aggregate\": {...}, \"final_per_task\": {...}}")
    parser.add_argument("--plot", metavar="PNG", type=output_file("heatmap.png"),
                        help="write the heatmap of the matrix (metrics in the title) to PNG")
    parser.add_argument("--report", metavar="HTML", type=output_file("report.html"),
                        help="write a self-contained HTML page: one run -> heatmap, accuracy over time, learning "
                             "curves, training loss, metrics table and config; several runs (--seeds) -> a "
                             "comparison of ASR / BWT / NBT per method (mean ± std over its seeds)")
    parser.add_argument("--run-root", default="results/Checkpoints",
                        help="where the runs live, for --report's training loss (metrics.jsonl) and config "
                             "(default results/Checkpoints)")
    parser.add_argument("--seeds", nargs="+", metavar="DIR_OR_JSON", default=[],
                        help="more runs of the same setup (e.g. other seeds): report each and the mean ± std (n) "
                             "over all runs, the positional one included, and each task's success after the last task per run "
                             "with its mean ± std (which tasks stay weak across seeds)")
    return parser


def _why_none(key: str, m: SuccessMatrix, curve: Optional[dict] = None) -> str:
    t = m.num_tasks
    uses_final_row = ("asr", "average_accuracy", "bwt", "forgetting", "average_incremental_accuracy")
    if key in uses_final_row and t - 1 not in m.row_positions:
        return f"the final checkpoint (after T{t - 1}) was not evaluated"
    if key in CURVE_METRICS and curve is None:
        return "needs learning curves: run_cl_eval.sh --curve on a run trained with trainer.save_interval=N " \
               "trainer.keep_last=0"
    if key in CURVE_METRICS:
        return "a task has no mid-task checkpoint, or a point or cell it needs was not evaluated"
    if t < 2 and key in ("bwt", "forgetting", "zero_shot_next", "forward_transfer", "nbt"):
        return "needs at least 2 tasks"
    if key == "forward_transfer" and m.initial is None:
        return "needs the untrained policy's success (\"initial\" in matrix.json)"
    if m.last_only and key not in ("asr", "average_accuracy"):
        return "last-only matrix"
    return "a cell it needs was not evaluated"


def format_report(m: SuccessMatrix, metrics: dict, curve: Optional[dict] = None) -> str:
    t = m.num_tasks
    kind = "last-only" if m.last_only else ("full" if m.num_checkpoints == t else "partial")
    head = m.run_id or "(no run_id)"
    if m.suite:
        head += f" (suite {m.suite})"
    lines = [f"{head}: {t} tasks, {m.num_checkpoints} of {t} checkpoints evaluated ({kind} matrix)"]
    if m.source:
        lines.append(f"  from {m.source}")
    if m.last_only:
        lines.append("  Only the final checkpoint was evaluated: BWT, F and the other metrics over earlier checkpoints "
                     "need every per-task checkpoint (run the evaluation without --last-only).")
    lines.append("")
    for key in SCALAR_METRICS:
        label, _, meaning = DESCRIPTIONS[key]
        v = metrics[key]
        note = meaning if v is not None else f"{meaning} [{_why_none(key, m, curve)}]"
        number, _, unit = format_value(key, v).partition(" ")
        lines.append(f"  {label:<5}{number:>7} {unit:<2}  {note}")
    seen = metrics["accuracy_over_time"]
    if t > 1 and not m.last_only and any(v is not None for v in seen):
        lines.append("  Seen-task success after each task: "
                     + ", ".join(f"T{k} {'—' if v is None else f'{v * 100:.1f}'}" for k, v in enumerate(seen)))
    lines.append("  % = success rate; pp = percentage points (a difference of success rates).")
    for note in (curve or {}).get("notes") or []:
        lines.append(f"  learning curve: {note}")
    if metrics["extra_eval_tasks"]:
        lines.append("Evaluated but not in the training stream (left out of every metric): "
                     + ", ".join(f"{n}: {format_percent(v)}" for n, v in metrics["extra_eval_tasks"].items()))
    if metrics["missing_eval_tasks"]:
        lines.append("Trained but not evaluated (— in the matrix): " + ", ".join(metrics["missing_eval_tasks"]))
    return "\n".join(lines)


def _run_label(m: SuccessMatrix, labels_seen: set[str]) -> str:
    label = m.run_id if m.run_id and m.run_id not in labels_seen else (m.source or "?")
    labels_seen.add(label)
    return label


def _mean_std_percent(s: dict) -> tuple[str, str]:
    """An `aggregate` entry's mean and std in % with one decimal ("—" where None)."""
    mean = "—" if s["mean"] is None else f"{round(s['mean'] * 100, 1) + 0.0:.1f}"  # + 0.0: no "-0.0"
    std = "—" if s["std"] is None else f"{s['std'] * 100:.1f}"
    return mean, std


def format_aggregate(matrices: list[SuccessMatrix], runs: list[dict], agg: dict) -> str:
    seen: set[str] = set()
    labels = [_run_label(m, seen) for m in matrices]
    w = max(len(x) for x in labels + ["run"]) + 2
    keys = ("asr", "bwt", "forgetting")
    lines = [f"{len(runs)} runs", f"{'run':<{w}}" + "".join(f"{DESCRIPTIONS[k][0]:>11}" for k in keys)]
    for label, r in zip(labels, runs):
        lines.append(f"{label:<{w}}" + "".join(f"{format_value(k, r[k]):>11}" for k in keys))
    lines += ["", "mean ± std over the runs (n = runs that give the metric; std = sample std):"]
    for key in SCALAR_METRICS:
        label, unit, _ = DESCRIPTIONS[key]
        mean, std = _mean_std_percent(agg[key])
        lines.append(f"  {label:<5}{mean:>7} ± {std:<5} {unit:<2}  (n={agg[key]['n']})")
    per_task = final_per_task(matrices)
    if per_task is None:
        lines.append("Note: the runs do not train the same set of tasks; their metrics may not be comparable.")
    elif any(s["n"] for s in per_task.values()):
        lines += ["", *format_final_per_task(per_task)]
    return "\n".join(lines)


def format_final_per_task(per_task: dict) -> list[str]:
    """Per task (train order), each run's success after the last task and the mean ± std, in %."""
    names = [f"T{i} {name}" for i, name in enumerate(per_task)]
    runs = len(next(iter(per_task.values()))["values"])
    w = max(len(x) for x in names + ["task"]) + 2
    lines = ["success after the last task, per task (%; runs #1.. in the order above):",
             f"{'task':<{w}}" + "".join(f"{'#' + str(r + 1):>6}" for r in range(runs)) + "   mean ± std"]
    for label, s in zip(names, per_task.values()):
        cells = "".join(f"{'—' if v is None else f'{v * 100:.0f}':>6}" for v in s["values"])
        mean, std = _mean_std_percent(s)
        lines.append(f"{label:<{w}}{cells}   {mean:>5} ± {std}")
    return lines


def check_usage(args: argparse.Namespace) -> list[str]:
    """The matrix sources to read; flags that do not go together are a UserError."""
    sources = ([args.matrix] if args.matrix else []) + list(args.seeds)
    if not sources:
        raise UserError("give an evaluation dir or matrix.json (or several with --seeds)")
    if args.json and args.show_matrix:
        raise UserError("--json prints only the metrics JSON; drop --show-matrix (or --json)")
    if args.plot and len(sources) > 1:
        raise UserError("--plot draws one run's matrix; run it without --seeds for each run you want to plot")
    return sources


def run(args: argparse.Namespace) -> int:
    sources = check_usage(args)
    matrices = [load_matrix(s) for s in sources]
    curves = [matching_curve(s, m) for s, m in zip(sources, matrices)]
    runs = [metrics_json(m, c) for m, c in zip(matrices, curves)]

    if args.report:
        from AlphaBrain.evaluation.report import write_comparison, write_run_report  # matplotlib only when needed

        if len(matrices) == 1:
            write_run_report(args.report, matrices[0], runs[0], curves[0], run_root=args.run_root)
        else:
            write_comparison(args.report, matrices, runs)

    if args.plot:
        from AlphaBrain.evaluation.plots import plot_matrix_heatmap  # matplotlib only when needed

        plot_matrix_heatmap(matrices[0], args.plot)

    if len(matrices) == 1:
        if args.json:
            print(json.dumps(runs[0], indent=2))
        else:
            if args.show_matrix:
                print(format_matrix_table(matrices[0]))
                print()
            print(format_report(matrices[0], runs[0], curves[0]))
    else:
        agg = aggregate_runs(runs)
        if args.json:
            print(json.dumps({"runs": runs, "aggregate": agg, "final_per_task": final_per_task(matrices)}, indent=2))
        else:
            if args.show_matrix:
                for m in matrices:
                    print(f"== {m.run_id or m.source}")
                    print(format_matrix_table(m))
                    print()
            print(format_aggregate(matrices, runs, agg))
    for written in (args.plot, args.report):
        if written:
            print(f"wrote {written}", file=sys.stderr if args.json else sys.stdout)
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_usage(args)
    except UserError as exc:
        parser.error(str(exc))
    return run_main(run, args)


if __name__ == "__main__":
    sys.exit(main())

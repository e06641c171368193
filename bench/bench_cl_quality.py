r"""Quality of CL methods on the built-in simulated benchmark: ASR / BWT / F, mean ± std over seeds.

For every (method, seed) it runs exactly what a user runs — `run_cl_train.sh` then
`run_cl_eval.sh` (the full T x T matrix in the simulator) — with the same
stream, steps, batch, memory size and evaluation seeds for every method, and
times each phase. Finished phases are skipped on a re-run (training resumes from
its last task checkpoint, evaluation skips evaluated cells), so an interrupted
benchmark continues where it stopped. Prints a table and writes it, with the
per-run numbers, to `<out>/summary.{json,md}`; the lines of an earlier table there
with the same settings are kept (`--replace-summary` drops them).

`--preset` picks named settings (quality_sweep.PRESETS); a flag given explicitly
overrides the preset's value. `--sweep KEY=V1,V2,...` runs every method at every
value and seed, prints one table per value and draws ASR against the value
(`<out>/sweep_<key>.png`, tables in `<out>/sweep_<key>.md`).

    python bench/bench_cl_quality.py                                   # sequential, er, multitask x 3 seeds
    python bench/bench_cl_quality.py --methods all --seeds 0 1 2       # every registered method
    python bench/bench_cl_quality.py --steps 300 --trials 5 --seeds 0  # a quick look
    python bench/bench_cl_quality.py --preset cl10_small_memory --methods sequential er mir multitask
    python bench/bench_cl_quality.py --methods er mir --sweep continual_learning.algorithm.buffer_size_per_task=10,50,200
    python bench/bench_cl_quality.py --preset cl10_small_memory --methods er mir --sweep buffer_size_per_task=10,50 \
        --variant mir_per_step=mir:mir_mode=per_step,mir_candidate_size=50,mir_top_k=26   # two MIRs, one plot
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from AlphaBrain.evaluation.matrix import aggregate_runs, load_matrix, metrics_json  # noqa: E402
from AlphaBrain.evaluation.metrics import format_percent, format_pp  # noqa: E402
from AlphaBrain.training.continual_learning.algorithms import algorithm_names, get_algorithm_class  # noqa: E402
from AlphaBrain.utils.atomic_io import atomic_write_text  # noqa: E402
from bench.quality_sweep import (  # noqa: E402
    DEFAULT_PRESET,
    MEMORY_KEYS,
    PRESETS,
    Variant,
    fixed_overrides,
    parse_fixed,
    parse_sweep,
    parse_variant,
    plot_sweep,
    resolve_settings,
    run_id,
    run_settings,
    sweep_override,
)

SCRIPTS = REPO / "scripts" / "run_continual_learning_scripts"
DEFAULT_METHODS = ["sequential", "er", "multitask"]
# Every method in the zoo, lower bound first and upper bound last.
ALL_ORDER = ["sequential", "er", "mir", "agem", "derpp", "ewc", "si", "lwf", "packnet", "weight_merge", "lora_per_task",
             "multitask"]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS),
                   help=f"named settings (default {DEFAULT_PRESET}); explicit flags below override them")
    p.add_argument("--suite", default=None, help="built-in stream (preset's; cl5: metaworld_cl5)")
    p.add_argument("--methods", nargs="+", default=DEFAULT_METHODS,
                   help=f"CL algorithms, or 'all' (default: {' '.join(DEFAULT_METHODS)})")
    p.add_argument("--model", default="tiny",
                   help="configs/continual_learning/models/<model>.yaml (default tiny; lora_per_task needs a model with "
                        "a VLM backbone and LoRA, e.g. qwengr00t_tiny with -- lora.enabled=true)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds (default 0 1 2)")
    p.add_argument("--steps", type=int, default=None, help="steps per task (preset's; cl5: 1000, as the default job)")
    p.add_argument("--batch", type=int, default=None, help="batch size (preset's; cl5: 64)")
    p.add_argument("--trials", type=int, default=None, help="rollouts per matrix cell (preset's; cl5: 10)")
    # Memory settings shared by every method that has the key, so methods differ only in what they do with memory.
    p.add_argument("--buffer-size", dest="buffer_size_per_task", type=int, default=None,
                   help="stored samples per task (preset's; cl5: 200)")
    p.add_argument("--replay-ratio", dest="replay_batch_ratio", type=float, default=None,
                   help="share of each batch replayed (preset's; cl5: 0.4)")
    p.add_argument("--sweep", default=None, metavar="KEY=V1,V2,...",
                   help="run every method at every value of one training override (memory keys set the shared memory)")
    p.add_argument("--set", dest="fixed", action="append", default=[], metavar="KEY=VALUE",
                   help="a training override for every run (repeatable; a continual_learning.algorithm.* key only "
                        "for the methods that declare it); it becomes part of the run ids")
    p.add_argument("--variant", dest="variants", action="append", default=[], metavar="LABEL=METHOD:KEY=VALUE,...",
                   help="one more line of the comparison: METHOD with its own overrides, shown as LABEL (repeatable; "
                        "a bare KEY is the method's hyperparameter), e.g. mir_per_step=mir:mir_mode=per_step,"
                        "mir_candidate_size=50,mir_top_k=26; tagged into the run ids like --set")
    p.add_argument("--workers", type=int, default=2, help="rollout worker processes (default 2)")
    p.add_argument("--out", default=None, help="summary folder (default results/bench_quality/<suite>_<steps>steps)")
    p.add_argument("--dry-run", action="store_true", help="print the commands and exit")
    p.add_argument("--summary-only", action="store_true",
                   help="run nothing: print the table from the finished runs (others are listed as missing)")
    p.add_argument("--replace-summary", action="store_true",
                   help="write the table of this invocation's methods, seeds and values only (by default the lines "
                        "of an earlier table in --out with the same settings are kept and this run's are added)")
    args = p.parse_args(argv)
    known = algorithm_names()
    if args.methods == ["all"]:
        args.methods = [m for m in ALL_ORDER if m in known] + sorted(set(known) - set(ALL_ORDER))
        if args.model == "tiny":  # the tiny CNN has no VLM backbone to put LoRA adapters on
            skipped = [m for m in args.methods if get_algorithm_class(m).requires_lora]
            args.methods = [m for m in args.methods if m not in skipped]
            if skipped:
                print(f"note: {', '.join(skipped)} left out: it needs LoRA (--model qwengr00t_tiny)", file=sys.stderr)
    for m in args.methods:
        if m not in known:
            p.error(f"unknown method {m!r}; registered: {', '.join(known)}")
    args.handled = {}  # run id -> record, for the runs this invocation has already run or planned
    given = vars(args)
    args.settings = resolve_settings(args.preset, given)
    for key, value in args.settings.items():
        setattr(args, key, value)
    try:
        args.sweep = parse_sweep(args.sweep) if args.sweep else None
        args.fixed = parse_fixed(args.fixed, args.sweep)
        args.entries = [Variant(m, m, ()) for m in args.methods]
        for text in args.variants:
            variant = parse_variant(text, {m: declared(m) for m in known})
            if variant.label in {e.label for e in args.entries}:
                raise ValueError(f"--variant label {variant.label!r} is taken (a method or an earlier variant)")
            # Its own overrides come after the shared ones; a key in both (or swept) would be ambiguous.
            parse_fixed([f"{f.key}={f.values[0]}" for f in (*args.fixed, *variant.fixed)], args.sweep,
                        f"--variant {variant.label} with --set")
            args.entries.append(variant)
        if args.sweep and args.sweep.memory_key:
            for value in args.sweep.values:  # a value the memory setting cannot take fails now, not mid-sweep
                try:
                    run_settings(args.settings, args.sweep, value, MEMORY_KEYS)
                except ValueError:
                    kind = type(args.settings[args.sweep.memory_key]).__name__
                    raise ValueError(f"--sweep value {value!r} is not a valid {args.sweep.short} (an {kind})") from None
    except ValueError as e:
        p.error(str(e))
    return args


def declared(method: str) -> set[str]:
    return set(get_algorithm_class(method).HYPERPARAMETERS)


def algo_overrides(method: str, settings: dict) -> list[str]:
    keys = declared(method)
    return [f"continual_learning.algorithm.{k}={settings[k]}" for k in MEMORY_KEYS if k in keys]


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


def entry_run_id(args, entry: Variant, seed: int, value: str | None) -> tuple[str, dict, tuple]:
    """(run id, settings, fixed overrides) of one (method or variant, seed, swept value)."""
    keys = declared(entry.method)
    settings = run_settings(args.settings, args.sweep, value, keys)
    fixed = (*args.fixed, *entry.fixed)
    return run_id(settings, entry.method, seed, keys, args.sweep, value, args.model, fixed), settings, fixed


def run_one(args, entry: Variant, seed: int, dataset: str, out: Path, value: str | None = None) -> dict:
    method, label = entry.method, entry.label
    rid, settings, fixed = entry_run_id(args, entry, seed, value)
    if rid in args.handled:  # a method the swept key cannot change: one run serves every value
        print(f"[{label} seed {seed}] {rid}: the run above (the swept key does not apply to {method})")
        return args.handled[rid]
    record_path = out / "runs" / f"{rid}.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {"run_id": rid, "seconds": {}}
    if "metrics" in record:  # finished: the record alone serves (it may be a committed one without its run folders)
        print(f"[{label} seed {seed}] {rid}: finished earlier")
        args.handled[rid] = record
        return record
    log = out / "runs" / f"{rid}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    ckpts = REPO / "results" / "Checkpoints" / rid / "checkpoints"
    train = ["bash", str(SCRIPTS / "run_cl_train.sh"), "--model", args.model, "--algo", method, "--dataset", dataset,
             "--run-id", rid]
    if ckpts.is_dir() and any(ckpts.glob("*_cl_state.json")):
        train.append("--resume")
    train += ["--", f"seed={seed}", f"continual_learning.steps_per_task={args.steps}",
              f"datasets.vla_data.per_device_batch_size={args.batch}",
              *(f"continual_learning.replay.{k}={settings[k]}" for k in MEMORY_KEYS),
              *algo_overrides(method, settings), *fixed_overrides(fixed, declared(method)),
              *sweep_override(args.sweep, value, declared(method)),
              *(["lora.enabled=true"] if get_algorithm_class(method).requires_lora else [])]
    evaluate = ["bash", str(SCRIPTS / "run_cl_eval.sh"), "--run-id", rid, "--suite", args.suite,
                "--trials", str(args.trials), "--workers", str(args.workers)]
    print(f"[{label} seed {seed}{'' if value is None else f', {args.sweep.key}={value}'}] {rid}", flush=True)
    for phase, cmd in (("train", train), ("eval", evaluate)):
        if phase in record["seconds"]:
            print(f"  {phase}: done earlier ({record['seconds'][phase]:.0f} s)")
            continue
        seconds = run_phase(cmd, log, args.dry_run)
        if not args.dry_run:
            record["seconds"][phase] = seconds
            atomic_write_text(record_path, json.dumps(record, indent=2))
    if args.dry_run:
        args.handled[rid] = record
        return record
    record["metrics"] = metrics_json(load_matrix(REPO / "results" / "eval_cl" / rid))
    atomic_write_text(record_path, json.dumps(record, indent=2))
    args.handled[rid] = record
    return record


def finished_records(args, out: Path, value: str | None = None) -> dict[str, list[dict]]:
    """Records of the finished (method, seed) runs at `value`; the missing ones are named on stderr."""
    records = {}
    for entry in args.entries:
        for seed in args.seeds:
            path = out / "runs" / f"{entry_run_id(args, entry, seed, value)[0]}.json"
            record = json.loads(path.read_text()) if path.exists() else {}
            if "metrics" in record:
                records.setdefault(entry.label, []).append(record)
            else:
                print(f"missing: {entry.label} seed {seed}{'' if value is None else f' at {value}'} (not finished)",
                      file=sys.stderr)
    return records


# Settings an earlier table must share for its lines to stay in the table this invocation writes.
SUMMARY_SCOPE = ("preset", "suite", "model", "steps", "batch", "trials", *MEMORY_KEYS, "set")


def summary_settings(args) -> dict:
    settings = {k: v for k, v in vars(args).items()
                if k not in ("dry_run", "sweep", "handled", "fixed", "entries", "replace_summary")}
    settings["set"] = [f"{f.key}={f.values[0]}" for f in args.fixed]
    if args.sweep:
        settings["sweep"] = {"key": args.sweep.key, "values": list(args.sweep.values)}
    return settings


def widen_to_earlier_summary(args, path: Path) -> None:
    """Add the methods, variants, seeds and swept values of the table at `path`, if made with the same settings.

    One more method or seed run into a folder then adds lines to its table instead of replacing the table with
    that run alone; the lines are recomputed from the run records, so nothing stale is carried over.
    """
    if args.replace_summary or not path.exists():
        return
    try:
        earlier = json.loads(path.read_text())["settings"]
        now = summary_settings(args)
        same = all(earlier.get(k) == now.get(k) for k in SUMMARY_SCOPE)
        if args.sweep:
            same = same and earlier.get("sweep", {}).get("key") == args.sweep.key
        known = algorithm_names()
        entries = [Variant(m, m, ()) for m in earlier["methods"] if m in known]
        entries += [parse_variant(text, {m: declared(m) for m in known}) for text in earlier.get("variants", [])]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        print(f"note: {path} is not a table this script wrote ({exc}); it is replaced", file=sys.stderr)
        return
    if not same:
        print(f"note: {path} was made with other settings; it is replaced", file=sys.stderr)
        return
    mine = {e.label: e for e in args.entries}
    added = [e for e in entries if e.label not in mine]
    if added:  # the earlier table's order, then this invocation's new lines (a label in both: this invocation's)
        args.entries = [*(mine.pop(e.label, e) for e in entries), *mine.values()]
    args.methods = [e.label for e in args.entries if not e.fixed]
    args.variants = [*earlier.get("variants", []), *(v for v in args.variants if v not in earlier.get("variants", []))]
    args.seeds = sorted({*args.seeds, *earlier["seeds"]})
    if args.sweep:
        values = [*earlier["sweep"]["values"], *(v for v in args.sweep.values if v not in earlier["sweep"]["values"])]
        try:
            values.sort(key=float)
        except ValueError:
            pass  # not numbers: earlier values first, in their order
        args.sweep = replace(args.sweep, values=tuple(values))
    if added:
        print(f"note: {path.name} keeps the lines of {', '.join(e.label for e in added)} "
              "(--replace-summary drops them)", file=sys.stderr)


def cell(agg: dict, key: str) -> str:
    a = agg[key]
    fmt = format_percent if key in ("asr", "diagonal_mean") else format_pp
    if a["mean"] is None:
        return "—"
    return fmt(a["mean"]) + ("" if a["std"] is None else f" ± {format_pp(a['std'])[:-3]}")


def summarize(args, records: dict[str, list[dict]], value: str | None = None) -> str:
    memory = {k: args.settings[k] for k in MEMORY_KEYS}
    if value is not None and args.sweep.memory_key:
        memory[args.sweep.memory_key] = type(memory[args.sweep.memory_key])(value)
    swept = "" if value is None else f"{args.sweep.key} = {value}; "
    swept += "".join(f"{f.key} = {f.values[0]}; " for f in args.fixed)
    lines = [f"{swept}preset {args.preset}: suite {args.suite}, {args.steps} steps/task, batch {args.batch}, "
             f"{args.trials} trials per cell, seeds {' '.join(map(str, args.seeds))}; memory {memory} where a method "
             "has it.", "",
             "| method | seeds | ASR | BWT | F | diag | train s/run | eval s/run |", "|---|---|---|---|---|---|---|---|"]
    for method, runs in records.items():
        agg = aggregate_runs([r["metrics"] for r in runs])
        train = sum(r["seconds"]["train"] for r in runs) / len(runs)
        evaluate = sum(r["seconds"]["eval"] for r in runs) / len(runs)
        lines.append(f"| {method} | {len(runs)} | {cell(agg, 'asr')} | {cell(agg, 'bwt')} | {cell(agg, 'forgetting')} | "
                     f"{cell(agg, 'diagonal_mean')} | {train:.0f} | {evaluate:.0f} |")
    lines.append("")
    for entry in args.entries:
        if entry.fixed:
            lines.append(f"{entry.label}: {entry.method} with " + ", ".join(f"{f.key} = {f.values[0]}" for f in entry.fixed)
                         + ".")
    lines.append("mean ± sample std over seeds; ASR and diag (success right after training each task) in %, "
                 "BWT / F / std in percentage points.")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    folder = f"{args.suite}_{args.steps}steps" if args.preset == DEFAULT_PRESET else args.preset
    out = Path(args.out or REPO / "results" / "bench_quality" / folder)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    dataset = args.suite
    if args.suite.startswith("metaworld") and not args.summary_only:
        print(f"[demos] {args.suite}", flush=True)
        start = time.perf_counter()
        run_phase([sys.executable, "-m", "AlphaBrain.benchmarks.metaworld.generate", "--stream", args.suite],
                  out / "demos.log", args.dry_run)
        print(f"  demos: {time.perf_counter() - start:.0f} s (cached after the first run)")
    if not args.summary_only:
        for value in args.sweep.values if args.sweep else (None,):
            for entry in args.entries:  # a method the swept key cannot change: later values find its run done
                for seed in args.seeds:
                    run_one(args, entry, seed, dataset, out, value)
    if args.dry_run:
        return 0
    name = f"sweep_{args.sweep.short}" if args.sweep else "summary"
    widen_to_earlier_summary(args, out / f"{name}.json")
    values = args.sweep.values if args.sweep else (None,)
    records = {value: finished_records(args, out, value) for value in values}
    tables = "\n\n".join(summarize(args, records[v], v) for v in values)
    settings = summary_settings(args)
    atomic_write_text(out / f"{name}.md", tables + "\n")
    atomic_write_text(out / f"{name}.json", json.dumps(
        {"settings": settings, "runs": records if args.sweep else records[None]}, indent=2))
    print()
    print(tables)
    written = [out / f"{name}.md", out / f"{name}.json"]
    if args.sweep:
        written.append(plot_sweep(args.sweep, records, out / f"{name}.png", f"preset {args.preset}, seeds "
                                  f"{' '.join(map(str, args.seeds))}"))
    print("\nwrote " + ", ".join(map(str, written)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

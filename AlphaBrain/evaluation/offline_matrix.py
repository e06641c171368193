"""Offline T x T matrix: action error of every task checkpoint on every task's demonstrations.

No simulator needed: row k = the checkpoint after training the k-th task,
column j = mean L1 distance (normalized action space, valid chunk steps only)
between the policy's predicted chunk and the demonstrated one, on a fixed
subset of task j's frames. Lower is better; a column whose error grows after
its diagonal entry shows forgetting. This is a training-signal diagnostic, not
a success rate: closed-loop success comes from simulator evaluation.

    python -m AlphaBrain.evaluation.offline_matrix results/Checkpoints/<run_id> [--frames 256] [--json out.json]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from AlphaBrain.runs import RunDir, load_run_model
from AlphaBrain.utils.atomic_io import atomic_write_json
from AlphaBrain.utils.cli import ArgumentParser, int_arg, output_file, run_main


def _load_run(run: "RunDir", allow_foreign: bool):
    """The run's stream (normalized like in training), its complete checkpoints and its model."""
    from AlphaBrain.streams import build_task_stream

    # checks the run dir, its statistics and its checkpoints, builds the run's model
    loaded = load_run_model(run.path, "last", allow_foreign_statistics=allow_foreign)
    stream = build_task_stream(loaded.cfg)
    run.prepare_statistics(loaded.cfg, stream, is_resume=True, allow_foreign=allow_foreign)
    return stream, run.checkpoints(), loaded.model


def _task_error(model, task, frames: np.ndarray, batch: int) -> float:
    errors = []
    for start in range(0, len(frames), batch):
        examples = [task[int(i)] for i in frames[start : start + batch]]
        pred = model.predict_action(examples)
        target = np.stack([e["action"] for e in examples])
        mask = np.stack([e.get("action_mask", np.ones(len(e["action"]), bool)) for e in examples])
        diff = np.abs(pred - target).mean(axis=-1)
        errors.append((diff * mask).sum() / max(1, mask.sum()))
    return float(np.mean(errors))


def offline_matrix(run_dir: str | Path, frames_per_task: int = 256, batch: int = 64, seed: int = 0,
                   allow_foreign_statistics: bool = False) -> dict:
    from AlphaBrain.runs.checkpoints import load_state_into

    run = RunDir(run_dir)
    stream, ckpts, model = _load_run(run, allow_foreign_statistics)
    rng = np.random.default_rng(seed)
    subsets = [np.sort(rng.choice(len(t), size=min(frames_per_task, len(t)), replace=False)) for t in stream.tasks]
    matrix = []
    model.eval()
    with torch.no_grad():
        for ckpt in ckpts:
            if ckpt.is_lora:  # adapters merge into a fresh base model, so rebuild per checkpoint
                model = load_run_model(run.path, ckpt.prefix.name, allow_foreign_statistics=True).model  # checked
            else:
                load_state_into(model, ckpt.model_file, f"is {run.config_file} the config that trained it?")
            matrix.append([_task_error(model, task, idx, batch) for task, idx in zip(stream.tasks, subsets)])
    return {
        "run_dir": str(run.path),
        "metric": "action_l1_normalized",
        "train_order": [t.name for t in stream.tasks],
        "checkpoints": [ckpt.prefix.name for ckpt in ckpts],
        "error": matrix,
    }


def format_matrix(result: dict) -> str:
    names = result["train_order"]
    err = np.asarray(result["error"])
    width = 9
    lines = ["Offline action error (mean L1, normalized; lower is better). Rows: after training task k. Columns: task j.",
             " " * 12 + "".join(f"{'T' + str(j):>{width}}" for j in range(len(names)))]
    for k, row in enumerate(err):
        lines.append(f"{'after T' + str(k):<12}" + "".join(f"{v:>{width}.4f}" for v in row))
    lines += [f"  T{j}: {n}" for j, n in enumerate(names)]
    if len(err) == len(names) and len(names) > 1:
        growth = [err[-1, j] - err[j, j] for j in range(len(names) - 1)]
        lines.append(f"Mean error increase on earlier tasks from right-after-training to the end: {np.mean(growth):+.4f}")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = ArgumentParser(
        prog="python -m AlphaBrain.evaluation.offline_matrix",
        description=__doc__.split("\n\n")[0],
        epilog="Example: python -m AlphaBrain.evaluation.offline_matrix results/Checkpoints/default_tiny_er",
    )
    parser.add_argument("run_dir", help="results/Checkpoints/<run_id>")
    parser.add_argument("--frames", type=int_arg(1), default=256, help="frames evaluated per task (default 256)")
    parser.add_argument("--json", metavar="PATH", type=output_file("offline_matrix.json"),
                        help="also write the matrix as JSON")
    parser.add_argument("--allow-foreign-statistics", action="store_true",
                        help="use the run's dataset_statistics.json even if it was computed on other data")
    args = parser.parse_args(argv)

    def run() -> None:
        result = offline_matrix(args.run_dir, args.frames, allow_foreign_statistics=args.allow_foreign_statistics)
        print(format_matrix(result))
        if args.json:
            atomic_write_json(args.json, result)

    return run_main(run)

if __name__ == "__main__":
    sys.exit(main())

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

import argparse
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from AlphaBrain.utils.atomic_io import atomic_write_json
from AlphaBrain.utils.errors import UserError


def _load_run(run_dir: Path):
    """The run's stream (normalized like in training), its complete checkpoints and its model."""
    from AlphaBrain.deployment.policy import load_run_model
    from AlphaBrain.training.continual_learning import checkpointing as ckpt_io
    from AlphaBrain.training.continual_learning.datasets import build_task_stream
    from AlphaBrain.training.continual_learning.run_setup import prepare_statistics

    loaded = load_run_model(run_dir, "last")  # checks the run dir and its checkpoints, builds the run's model
    ckpts = ckpt_io.list_complete_checkpoints(run_dir / "checkpoints")
    stream = build_task_stream(loaded.cfg)
    prepare_statistics(loaded.cfg, stream, run_dir)
    return stream, ckpts, loaded.model, ckpt_io


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


def offline_matrix(run_dir: str | Path, frames_per_task: int = 256, batch: int = 64, seed: int = 0) -> dict:
    from AlphaBrain.deployment.policy import load_run_model

    run_dir = Path(run_dir)
    stream, ckpts, model, ckpt_io = _load_run(run_dir)
    rng = np.random.default_rng(seed)
    subsets = [np.sort(rng.choice(len(t), size=min(frames_per_task, len(t)), replace=False)) for t in stream.tasks]
    matrix = []
    model.eval()
    with torch.no_grad():
        for ckpt in ckpts:
            if ckpt.is_lora:  # adapters merge into a fresh base model, so rebuild per checkpoint
                model = load_run_model(run_dir, ckpt.prefix.name).model
            else:
                model.load_state_dict(ckpt_io.load_model_state(ckpt))
            matrix.append([_task_error(model, task, idx, batch) for task, idx in zip(stream.tasks, subsets)])
    return {
        "run_dir": str(run_dir),
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
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Example: python -m AlphaBrain.evaluation.offline_matrix results/Checkpoints/default_tiny_er",
    )
    parser.add_argument("run_dir", help="results/Checkpoints/<run_id>")
    parser.add_argument("--frames", type=int, default=256, help="frames evaluated per task (default 256)")
    parser.add_argument("--json", metavar="PATH", help="also write the matrix as JSON")
    args = parser.parse_args(argv)
    try:
        result = offline_matrix(args.run_dir, args.frames)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_matrix(result))
    if args.json:
        atomic_write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

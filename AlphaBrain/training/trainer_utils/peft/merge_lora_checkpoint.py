"""Merge LoRA task checkpoints of a run into full-parameter checkpoints on disk.

    python -m AlphaBrain.training.trainer_utils.peft.merge_lora_checkpoint --run-dir results/Checkpoints/<run_id>
    python -m AlphaBrain.training.trainer_utils.peft.merge_lora_checkpoint --run-dir ... --checkpoint task_2 --out merged.pt

Each merged file is the state dict of the same framework built with
`lora.enabled=false`, so it loads wherever a `*_pytorch_model.pt` does
(`load_policy`, the policy server, `--checkpoint <path>`). Written next to the
adapter as `<prefix>_merged.pt` unless `--out` is given; evaluation picks that
file up instead of merging again. Evaluation does not need this step: it
merges in memory.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional

from AlphaBrain.utils.cli import ArgumentParser, output_file, run_main
from AlphaBrain.utils.errors import UserError


def merge_run(run_dir: Path, checkpoint: str = "all", out: Optional[Path] = None, device: str = "cpu") -> list[Path]:
    """Merge one checkpoint (a name as `resolve_checkpoint` takes it) or "all"; returns the files written."""
    import torch

    from AlphaBrain.runs import RunDir, load_run_model, strip_checkpoint_suffix
    from AlphaBrain.runs.layout import LORA_DIR_SUFFIX, MERGED_SUFFIX
    from AlphaBrain.utils.atomic_io import atomic_path

    run = RunDir(run_dir)
    if checkpoint == "all":
        names = [c.prefix.name for c in run.checkpoints() if c.is_lora]
        if not names:
            raise UserError(f"{run.checkpoint_dir} has no complete LoRA checkpoint (task_*{LORA_DIR_SUFFIX}/) to merge.")
        if out is not None and len(names) > 1:
            raise UserError(f"--out names one file but the run has {len(names)} LoRA checkpoints; add --checkpoint NAME.")
    else:
        names = [checkpoint]
    written = []
    for name in names:
        resolved = run.resolve_checkpoint(name)
        prefix = strip_checkpoint_suffix(resolved.name)
        adapter = resolved if resolved.is_dir() else resolved.parent / f"{prefix}{LORA_DIR_SUFFIX}"
        if not adapter.is_dir():
            raise UserError(f"Checkpoint {name} of {run_dir} is not a LoRA checkpoint (it has full weights already).")
        start = time.perf_counter()
        if out is None:
            loaded = load_run_model(run.path, adapter, device=device, cache_merged=True)
            target = adapter.parent / (adapter.name[: -len(LORA_DIR_SUFFIX)] + MERGED_SUFFIX)
        else:
            loaded = load_run_model(run.path, adapter, device=device)
            target = out
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp:
                torch.save({k: v.detach().cpu() for k, v in loaded.model.state_dict().items()}, tmp)
        size = target.stat().st_size / 2**20
        print(f"[merge] {adapter.name} -> {target} ({size:.1f} MiB, {time.perf_counter() - start:.1f} s)", flush=True)
        written.append(target)
    return written


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m AlphaBrain.training.trainer_utils.peft.merge_lora_checkpoint",
        description=__doc__.split("\n\n")[0],
        epilog="Merged files are several GB for the large models; evaluation merges in memory and needs none of them.",
    )
    parser.add_argument("--run-dir", required=True, type=Path, help="the LoRA training run: results/Checkpoints/<run_id>")
    parser.add_argument("--checkpoint", default="all",
                        help='"all" (default: every LoRA task checkpoint), "last", "task_<k>" or a checkpoint name')
    parser.add_argument("--out", type=output_file("merged.pt"), default=None,
                        help="write here instead of <prefix>_merged.pt next to the adapter (one checkpoint only)")
    parser.add_argument("--device", default="cpu", help="device to merge on (default cpu)")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_main(merge_run, args.run_dir, args.checkpoint, args.out, args.device)


if __name__ == "__main__":
    sys.exit(main())

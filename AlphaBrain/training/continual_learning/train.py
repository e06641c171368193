"""Continual trainer: an outer loop over the tasks of a stream, a plain training loop inside.

    for task in stream:
        on_task_start -> [observe -> modify_batch -> forward (+ compute_penalty)
                          -> backward -> after_backward -> clip -> optimizer step] x steps_per_task
        -> on_task_end -> checkpoint

Every random stream (torch, numpy, python, the DataLoader shuffle, the replay
sampling) is reseeded from (seed, task position) at each task start, and the
optimizer and LR schedule are rebuilt per task. A run resumed after task k is
therefore bitwise identical to an uninterrupted one on CPU: nothing but the
model weights and the algorithm's state has to survive a restart.

Entry point: python -m AlphaBrain.training.continual_learning.train \
    --config_yaml configs/continual_learning/cl_base.yaml configs/continual_learning/models/tiny.yaml \
    continual_learning.steps_per_task=100
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import random
import sys
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader
from tqdm import tqdm

from AlphaBrain.dataloader import save_dataset_statistics
from AlphaBrain.config.loader import config_to_yaml, load_run_config, resolved_container
from AlphaBrain.training.continual_learning import checkpointing as ckpt_io
from AlphaBrain.training.continual_learning.algorithms import CLContext, build_cl_algorithm
from AlphaBrain.training.continual_learning.datasets import TaskStream, build_task_stream
from AlphaBrain.training.continual_learning.run_setup import (
    POLICY_SPEC_FILE,
    policy_spec,
    prepare_statistics,
    resume_point,
)
from AlphaBrain.training.trainer_utils.optim import build_optimizer, build_scheduler
from AlphaBrain.training.trainer_utils.tracking import MetricsLogger, check_reporter
from AlphaBrain.utils.atomic_io import atomic_write_json, atomic_write_text
from AlphaBrain.utils.errors import ConfigError, UserError

logger = logging.getLogger("alphabrain.cl")
_PLAIN_DISTRIBUTED = ("NO", "MULTI_CPU", "MULTI_GPU")


def list_collate(batch: list[dict]) -> list[dict]:
    """Samples stay a list of dicts; the policy collates (DESIGN: a policy consumes list[dict])."""
    return batch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class ContinualVLATrainer:
    """Sequential task trainer; CL algorithms plug in through their hooks only."""

    def __init__(self, cfg: DictConfig, accelerator: Any = None, stream: Optional[TaskStream] = None):
        from accelerate import Accelerator

        self.cfg = cfg
        # Gradient accumulation is done in the loop (accelerate's `accumulate` costs more per step).
        self.accelerator = accelerator or Accelerator(
            cpu=not torch.cuda.is_available(), mixed_precision=str(cfg.trainer.mixed_precision)
        )
        self.seed = int(cfg.seed)
        self.run_dir = Path(cfg.run_root_dir) / str(cfg.run_id)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.stream = stream
        self.model = None
        self.algorithm = None
        self.global_step = 0
        self.start_position = 0

    # ------------------------------------------------------------------ setup
    def prepare_training(self, dry_run: bool = False) -> None:
        """Stream, statistics, model, algorithm; restores state when resuming.

        Everything a user can get wrong is checked before the run dir is
        touched, so a bad input leaves nothing behind. `dry_run` stops there.
        """
        from AlphaBrain.model import build_framework

        cfg, acc = self.cfg, self.accelerator
        if int(cfg.continual_learning.steps_per_task) < 1:
            raise ConfigError(f"continual_learning.steps_per_task must be >= 1, got {cfg.continual_learning.steps_per_task}.")
        if int(cfg.datasets.vla_data.per_device_batch_size) < 1:
            raise ConfigError("datasets.vla_data.per_device_batch_size must be >= 1.")
        if int(cfg.trainer.gradient_accumulation_steps) < 1:
            raise ConfigError("trainer.gradient_accumulation_steps must be >= 1.")
        if self.stream is None:
            self.stream = build_task_stream(cfg)
        resume = resume_point(self.cfg, self.run_dir, self.stream)
        stats = prepare_statistics(cfg, self.stream, self.run_dir)

        seed_everything(self.seed)
        self.model = build_framework(cfg, self.stream.base_dataset.data_spec)
        if bool(cfg.lora.enabled):
            from AlphaBrain.training.trainer_utils.peft import apply_lora

            self.model = apply_lora(self.model, cfg.lora)
        self.algorithm = build_cl_algorithm(cfg, seed=self.seed, rank=acc.process_index, world_size=acc.num_processes)
        # Settings otherwise first read when task 0 starts: check them now, before anything is written.
        build_scheduler(build_optimizer(self.model, cfg.trainer), cfg.trainer, self.stream.steps_per_task)
        check_reporter(str(cfg.trainer.report_to))
        if resume is not None:
            self._restore(resume)
        if dry_run:
            return
        if acc.is_main_process:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.run_dir / "config.yaml", config_to_yaml(cfg))
            atomic_write_json(self.run_dir / "stream.json", self.stream.to_json())
            atomic_write_json(self.run_dir / POLICY_SPEC_FILE, policy_spec(self.stream))
            save_dataset_statistics(stats, self.run_dir / "dataset_statistics.json")
        if not self._under_deepspeed:
            # Under accelerate's DeepSpeed launch the engine is built in train() (deepspeed_direct), with its optimizer.
            self.model = acc.prepare(self.model)
        self.metrics = MetricsLogger(
            self.run_dir, str(cfg.trainer.report_to), str(cfg.run_id), resolved_container(cfg)
        ) if acc.is_main_process else None
        self._stats = stats
        if acc.is_main_process:
            n_params = sum(p.numel() for p in self.unwrapped.parameters())
            n_train = sum(p.numel() for p in self.unwrapped.parameters() if p.requires_grad)
            print(
                f"[alphabrain] run {cfg.run_id}: {len(self.stream)} tasks x {self.stream.steps_per_task} steps, "
                f"algorithm {self.algorithm.name}, model {cfg.framework.name} "
                f"({n_params / 1e6:.2f} M params, {n_train / 1e6:.2f} M trainable), "
                f"{acc.num_processes} process(es) on {acc.device}"
                + (f"; resuming at task {self.start_position + 1}" if 0 < self.start_position < len(self.stream) else ""),
                flush=True,
            )

    def _restore(self, resume: ckpt_io.TaskCheckpoint) -> None:
        if resume.is_lora != bool(self.cfg.lora.enabled):
            kind = "LoRA" if resume.is_lora else "full-parameter"
            raise UserError(
                f"Cannot resume from {resume.prefix.name}: it is a {kind} checkpoint but this config has "
                f"lora.enabled={bool(self.cfg.lora.enabled)}. Resume with the run's own settings (see "
                f"{self.run_dir / 'config.yaml'}) or use a new --run-id."
            )
        if resume.is_lora:
            from AlphaBrain.training.trainer_utils.peft import restore_lora_checkpoint

            restore_lora_checkpoint(self.model, resume.prefix)
        else:
            self._restore_full(resume)
        self.algorithm.load_state_dict(resume.state["algorithm"])
        self.algorithm.load_tensor_state_dict(ckpt_io.load_cl_tensors(resume))
        self.global_step = int(resume.state["global_step"])
        self.start_position = resume.position + 1

    def _restore_full(self, resume: ckpt_io.TaskCheckpoint) -> None:
        try:
            self.model.load_state_dict(ckpt_io.load_model_state(resume))
        except RuntimeError as exc:  # shape / key mismatch: the config changed since the checkpoint
            first = str(exc).strip().splitlines()[-1].strip()
            raise UserError(
                f"Cannot resume from {resume.model_file.name}: its weights do not fit the model this config builds "
                f"({first}). Resume with the run's own settings (see {self.run_dir / 'config.yaml'}) or use a new --run-id."
            ) from None

    @property
    def _under_deepspeed(self) -> bool:
        return str(self.accelerator.distributed_type.value) == "DEEPSPEED"

    @property
    def unwrapped(self) -> torch.nn.Module:
        return self.accelerator.unwrap_model(self.model)

    def build_task_dataloader(self, position: int) -> DataLoader:
        """Shuffled loader over one task; its shuffle order depends only on (seed, task)."""
        generator = torch.Generator().manual_seed(self.seed * 1000 + position)
        workers = int(self.cfg.datasets.vla_data.num_workers)
        loader = DataLoader(
            self.stream.tasks[position],
            batch_size=int(self.cfg.datasets.vla_data.per_device_batch_size),
            shuffle=True,
            drop_last=len(self.stream.tasks[position]) >= int(self.cfg.datasets.vla_data.per_device_batch_size),
            collate_fn=list_collate,
            num_workers=workers,
            persistent_workers=workers > 0,
            generator=generator,
        )
        # The policy collates and moves tensors itself: no per-batch device placement by accelerate.
        return self.accelerator.prepare_data_loader(loader, device_placement=False)

    # --------------------------------------------------------------- training
    def train(self) -> Path:
        """Run every remaining task; returns the run dir."""
        if self.model is None:
            self.prepare_training()
        try:
            if self._under_deepspeed:
                # accelerate cannot prepare a model alone and a new optimizer per task for DeepSpeed: one engine
                # for the whole stream, same hook order (AlphaBrain/training/trainer_utils/deepspeed_direct.py).
                from AlphaBrain.training.trainer_utils.deepspeed_direct import train_stream_deepspeed

                plugin = self.accelerator.state.deepspeed_plugin
                train_stream_deepspeed(self, plugin.deepspeed_config, after_task=self._save_task_checkpoint)
            else:
                for position in range(self.start_position, len(self.stream)):
                    self._train_task(position)
        finally:
            if self.metrics is not None:
                self.metrics.close()
        if self.accelerator.is_main_process:
            print(f"[alphabrain] done: checkpoints in {self.ckpt_dir}", flush=True)
        return self.run_dir

    def _train_task(self, position: int) -> None:
        cfg, acc, algo = self.cfg, self.accelerator, self.algorithm
        task = self.stream.tasks[position]
        steps = self.stream.steps_per_task
        seed_everything(self.seed + 1000 * (position + 1))
        loader = self.build_task_dataloader(position)
        optimizer = build_optimizer(self.unwrapped, cfg.trainer)
        # accelerate's optimizer / clipping wrappers exist for loss scaling, DeepSpeed, FSDP and XLA; on a plain
        # (or DDP) run they only add per-step checks, so the trainer then uses torch's directly.
        plain = acc.scaler is None and str(acc.distributed_type.value) in _PLAIN_DISTRIBUTED
        clip_grad_norm = torch.nn.utils.clip_grad_norm_ if plain else acc.clip_grad_norm_
        optimizer = optimizer if plain else acc.prepare(optimizer)
        scheduler = build_scheduler(optimizer, cfg.trainer, steps)
        ctx = CLContext(
            position,
            self.unwrapped,
            task,
            loader,
            acc,
            num_tasks=len(self.stream),
            # Hooks run once per micro-batch; methods that count optimizer steps divide by this.
            extras={"gradient_accumulation_steps": int(cfg.trainer.gradient_accumulation_steps), "steps": steps},
        )
        algo.on_task_start(ctx)
        self.model.train()

        clip = cfg.trainer.gradient_clipping
        accum = int(cfg.trainer.gradient_accumulation_steps)
        log_every = max(1, int(cfg.trainer.logging_frequency))
        bar = tqdm(
            total=steps,
            desc=f"task {position + 1}/{len(self.stream)} {task.name[:40]}",
            disable=not acc.is_main_process,
            dynamic_ncols=True,
        )
        batches = self._forever(loader)
        policy = self.unwrapped  # once per task: accelerate's unwrap_model walks every submodule
        start, window = time.perf_counter(), []
        for step in range(steps):
            for micro in range(accum):
                # Under DDP every backward all-reduces unless told not to: only the last micro-batch syncs.
                sync = contextlib.nullcontext() if micro == accum - 1 else acc.no_sync(self.model)
                with sync:
                    batch = next(batches)
                    algo.observe(batch, position)
                    batch = algo.modify_batch(batch, position)
                    with acc.autocast():
                        out = self.model(batch)
                        penalty = algo.compute_penalty(policy)
                        loss = out["action_loss"] if penalty is None else out["action_loss"] + penalty
                    acc.backward(loss / accum)
                    algo.after_backward(policy)
            if clip is not None:
                clip_grad_norm(self.model.parameters(), float(clip))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            self.global_step += 1
            window.append(float(loss.detach()))
            if acc.is_main_process:
                rate = (step + 1) / max(1e-9, time.perf_counter() - start)
                bar.set_postfix(loss=f"{window[-1]:.4f}", steps_s=f"{rate:.1f}", refresh=False)
                bar.update(1)
                if (step + 1) % log_every == 0 or step + 1 == steps:
                    self.metrics.log(
                        {
                            "task": position,
                            "task_name": task.name,
                            "task_step": step + 1,
                            "loss": float(np.mean(window)),
                            "action_loss": float(out["action_loss"].detach()),
                            "penalty": None if penalty is None else float(penalty.detach()),
                            "lr": scheduler.get_last_lr()[0],
                            "steps_per_s": rate,
                        },
                        self.global_step,
                    )
                    window = []
        bar.close()
        algo.on_task_end(ctx)
        self._save_task_checkpoint(position)

    @staticmethod
    def _forever(loader):
        while True:
            yield from loader

    def _save_task_checkpoint(self, position: int) -> None:
        acc = self.accelerator
        is_last = position == len(self.stream) - 1
        if not (bool(self.cfg.continual_learning.save_checkpoint_per_task) or is_last):
            return
        acc.wait_for_everyone()
        if acc.is_main_process:
            task = self.stream.tasks[position]
            task_id = task.origin.get("task_index")
            task_id = task.origin["dataset_index"] if task_id is None else task_id
            prefix = ckpt_io.checkpoint_prefix(position, int(task_id), self.global_step)
            state = {
                "task_position": position,
                "task_name": task.name,
                "global_step": self.global_step,
                "num_tasks": len(self.stream),
                "framework": type(self.unwrapped).__name__,
                "algorithm": self.algorithm.state_dict(),
            }
            if bool(self.cfg.lora.enabled):
                from AlphaBrain.training.trainer_utils.peft import save_lora_checkpoint

                save_lora_checkpoint(self.unwrapped, self.ckpt_dir, prefix, state, self.algorithm.tensor_state_dict())
            else:
                state_dict = {k: v.detach().cpu() for k, v in self.unwrapped.state_dict().items()}
                ckpt_io.save_full_checkpoint(
                    self.ckpt_dir, prefix, state_dict, state, self.algorithm.tensor_state_dict()
                )
            tqdm.write(f"[alphabrain] saved {self.ckpt_dir / prefix}*")
        acc.wait_for_everyone()


# ---------------------------------------------------------------------- CLI
def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m AlphaBrain.training.continual_learning.train",
        description="Train one VLA policy over a stream of tasks with a continual-learning algorithm.",
        epilog="Example: --config_yaml configs/continual_learning/cl_base.yaml "
        "configs/continual_learning/models/tiny.yaml continual_learning.steps_per_task=100 trainer.is_resume=true",
    )
    parser.add_argument(
        "--config_yaml", nargs="+", required=True, metavar="YAML",
        help="YAML files merged left to right on top of cl_base.yaml (e.g. cl_base.yaml models/tiny.yaml).",
    )
    parser.add_argument(
        "--dry-run", action="store_true",
        help="Check the config, dataset, statistics, model and algorithm, print the plan, and exit without training.",
    )
    parser.add_argument("overrides", nargs="*", help="OmegaConf dotlist overrides, e.g. lora.rank=64 (a leading -- is allowed).")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = build_arg_parser()
    args, unknown = parser.parse_known_args(argv)
    # Dotlist items written as --key=value look like options to argparse; accept them.
    # `--config_yaml a.yaml b.yaml key=value ...`: argparse hands the dotlist to --config_yaml too.
    yamls = [a for a in args.config_yaml if "=" not in a]
    overrides = [a for a in args.config_yaml if "=" in a] + list(args.overrides) + [u for u in unknown if "=" in u]
    stray = [u for u in unknown if "=" not in u]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)} (overrides are key=value)")
    try:
        cfg = load_run_config(yamls, overrides)
        if cfg.run_id is None:
            raise ConfigError("run_id is not set: add run_id=<name> (run_cl_train.sh sets it for you).")
        trainer = ContinualVLATrainer(cfg)
        if args.dry_run:
            trainer.prepare_training(dry_run=True)
            print(f"[alphabrain] dry run OK: {len(trainer.stream)} tasks: "
                  + ", ".join(t.name for t in trainer.stream.tasks), flush=True)
        else:
            trainer.train()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: completed task checkpoints are kept; rerun with --resume to continue.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Continual trainer: an outer loop over the tasks of a stream, a plain training loop inside.

    for task in stream:
        on_task_start -> [observe -> modify_batch -> forward (+ compute_penalty)
                          -> backward -> after_backward -> clip -> optimizer step -> after_optimizer_step
                          (-> mid-task checkpoint every trainer.save_interval steps)] x steps_per_task
        -> on_task_end -> checkpoint

There is one loop for every backend: accelerate (one process or DDP) and a DeepSpeed engine
differ only behind `trainer_utils/backends.py`. Every random stream (torch, numpy, python,
the DataLoader shuffle, the replay sampling) is reseeded from (seed, task position) at each
task start, and the optimizer and LR schedule are rebuilt per task. A run resumed after task
k is therefore bitwise identical to an uninterrupted one on CPU: nothing but the model weights
and the algorithm's state has to survive a restart. A run resumed from a mid-task checkpoint is
too: that checkpoint adds the optimizer, the schedule, the batch position and the random streams
(`mid_task.py`). The run directory is `runs.RunDir`'s.

Entry point: python -m AlphaBrain.training.continual_learning.train \
    --config_yaml configs/continual_learning/cl_base.yaml configs/continual_learning/models/tiny.yaml \
    continual_learning.steps_per_task=100
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader
from tqdm import tqdm

from AlphaBrain.config.loader import config_to_yaml, load_run_config, resolved_container, split_config_args
from AlphaBrain.runs import RunDir, TaskCheckpoint, checkpoint_prefix
from AlphaBrain.streams import TaskStream, build_task_stream
from AlphaBrain.training.continual_learning.algorithms import CLContext, build_cl_algorithm
from AlphaBrain.training.continual_learning.data_order import TaskBatchOrder
from AlphaBrain.training.continual_learning.mid_task import MidTaskResume, save_mid_task_checkpoint
from AlphaBrain.training.trainer_utils.backends import build_backend, check_algorithm, check_lora, check_mid_task
from AlphaBrain.training.trainer_utils.optim import build_optimizer, build_scheduler
from AlphaBrain.training.trainer_utils.tracking import MetricsLogger, check_reporter
from AlphaBrain.utils.cli import ArgumentParser, run_main
from AlphaBrain.utils.errors import ConfigError
from AlphaBrain.utils.seeding import seed_everything

logger = logging.getLogger("alphabrain.cl")

__all__ = ["ContinualVLATrainer", "list_collate", "main", "seed_everything"]


def list_collate(batch: list[dict]) -> list[dict]:
    """Samples stay a list of dicts; the policy collates (DESIGN: a policy consumes list[dict])."""
    return batch


class ContinualVLATrainer:
    """Sequential task trainer; CL algorithms plug in through their hooks only.

    `deepspeed_config` (a dict or a JSON path) trains under one DeepSpeed engine; accelerate's
    DeepSpeed launch (`run_cl_train.sh --deepspeed`) selects it by itself.
    """

    def __init__(self, cfg: DictConfig, accelerator: Any = None, stream: Optional[TaskStream] = None,
                 deepspeed_config: Mapping | str | None = None):
        from accelerate import Accelerator

        self.cfg = cfg
        # Gradient accumulation is done in the loop (accelerate's `accumulate` costs more per step).
        self.accelerator = accelerator or Accelerator(
            cpu=not torch.cuda.is_available(), mixed_precision=str(cfg.trainer.mixed_precision)
        )
        self.backend = build_backend(self.accelerator, cfg, deepspeed_config)
        self.seed = int(cfg.seed)
        self.run = RunDir.of(cfg)
        self.run_dir = self.run.path
        self.ckpt_dir = self.run.checkpoint_dir
        self.stream = stream
        self.model = None
        self.algorithm = None
        self.metrics = None
        self.global_step = 0
        self.start_position = 0
        self.save_interval = int(cfg.trainer.save_interval)
        self.mid_task_resume: Optional[MidTaskResume] = None

    # ------------------------------------------------------------------ setup
    def prepare_training(self, dry_run: bool = False) -> None:
        """Algorithm, stream, statistics, model; restores state when resuming.

        Names (algorithm, model, stream) are checked before any data is read, and
        everything a user can get wrong is checked before the run dir is touched,
        so a bad input leaves nothing behind. `dry_run` stops there.
        """
        from AlphaBrain.model import build_framework, get_framework_class

        cfg, acc = self.cfg, self.accelerator
        self.algorithm = build_cl_algorithm(cfg, seed=self.seed, rank=acc.process_index, world_size=acc.num_processes)
        check_algorithm(self.algorithm, self.backend)
        check_lora(self.algorithm, bool(cfg.lora.enabled))
        check_mid_task(self.backend, self.save_interval)
        get_framework_class(str(cfg.framework.name))
        if self.stream is None:
            self.stream = build_task_stream(cfg)  # resolves (and checks) the stream name before any data is read
        resume = self.run.resume_point(bool(cfg.trainer.is_resume), self.stream)
        stats = self.run.prepare_statistics(cfg, self.stream, bool(cfg.trainer.is_resume))

        seed_everything(self.seed)
        self.model = build_framework(cfg, self.stream.base_dataset.data_spec)
        if bool(cfg.lora.enabled):
            from AlphaBrain.model.lora import apply_lora

            self.model = apply_lora(self.model, cfg.lora)
        # Settings otherwise first read when task 0 starts: check them now, before anything is written.
        build_scheduler(build_optimizer(self.model, cfg.trainer), cfg.trainer, self.stream.steps_per_task)
        check_reporter(str(cfg.trainer.report_to))
        if resume is not None:
            self._restore(resume)
        if dry_run:
            return
        if acc.is_main_process:
            self.run.write_start_files(config_to_yaml(cfg), self.stream, stats)
        self.backend.prepare(self.model)
        self.model = self.backend.model
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
                f"{acc.num_processes} process(es) on {acc.device}, backend {self.backend.name}"
                + self._resume_note(),
                flush=True,
            )

    def _restore(self, resume: TaskCheckpoint) -> None:
        start_from: Optional[TaskCheckpoint] = resume
        if resume.is_mid_task:
            # The task start is replayed from the previous task's end (mid_task.py), then the mid-task state laid over.
            acc = self.accelerator
            self.mid_task_resume = MidTaskResume.read(resume, acc.process_index, acc.num_processes)
            previous = [c for c in self.run.checkpoints() if c.position == resume.position - 1]
            start_from = previous[0] if previous else None  # none inside task 0: the freshly built model
        if start_from is not None:
            tensors = self.run.restore_task_checkpoint(self.model, start_from, lora=bool(self.cfg.lora.enabled))
            self.algorithm.load_state_dict(start_from.state["algorithm"])
            self.algorithm.load_tensor_state_dict(tensors)
            self.global_step = int(start_from.state["global_step"])
        self.start_position = resume.position if resume.is_mid_task else resume.position + 1

    def _resume_note(self) -> str:
        mid = self.mid_task_resume
        if mid is not None:
            return f"; resuming inside task {mid.position + 1} after step {mid.trainer_state['task_step']}"
        return f"; resuming at task {self.start_position + 1}" if 0 < self.start_position < len(self.stream) else ""

    @property
    def unwrapped(self) -> torch.nn.Module:
        """The policy itself, outside any DDP / DeepSpeed wrapper."""
        return self.backend.policy if self.backend.model is not None else self.model

    def build_task_dataloader(self, position: int, start: int = 0) -> DataLoader:
        """This process's endless loader over one task, from its batch `start` (data_order.py).

        The order depends only on (seed, task, rank). Processes shard batches themselves, so accelerate
        does not wrap the loader; the policy collates and moves tensors itself.
        """
        acc = self.accelerator
        task = self.stream.tasks[position]
        order = TaskBatchOrder(len(task), int(self.cfg.datasets.vla_data.per_device_batch_size), self.seed, position,
                               rank=acc.process_index, world_size=acc.num_processes, start=start)
        # A generator of its own: DataLoader draws its workers' base seed from it instead of the global stream.
        generator = torch.Generator().manual_seed(self.seed * 1000 + position)
        return DataLoader(task, batch_sampler=order, collate_fn=list_collate,
                          num_workers=int(self.cfg.datasets.vla_data.num_workers), generator=generator)

    # --------------------------------------------------------------- training
    def train(self) -> Path:
        """Run every remaining task; returns the run dir."""
        if self.model is None:
            self.prepare_training()
        try:
            for position in range(self.start_position, len(self.stream)):
                self._train_task(position)
        finally:
            if self.metrics is not None:
                self.metrics.close()
        if self.accelerator.is_main_process:
            print(f"[alphabrain] done: checkpoints in {self.ckpt_dir}", flush=True)
        return self.run_dir

    def _train_task(self, position: int) -> None:
        acc, algo, backend = self.accelerator, self.algorithm, self.backend
        task = self.stream.tasks[position]
        steps = self.stream.steps_per_task
        seed_everything(self.seed + 1000 * (position + 1))
        resume = self.mid_task_resume if self.mid_task_resume and self.mid_task_resume.position == position else None
        loader = self.build_task_dataloader(position, start=0 if resume is None else resume.batches_read)
        backend.start_task(steps)
        policy = self.unwrapped  # once per task: accelerate's unwrap_model walks every submodule
        accum = backend.accumulation
        ctx = CLContext(position, policy, task, loader, acc, num_tasks=len(self.stream), steps=steps,
                        gradient_accumulation_steps=accum, global_step=self.global_step,
                        stream_tasks=tuple(self.stream.tasks))
        algo.ctx = ctx
        algo.on_task_start(ctx)
        first = 0
        if resume is not None:
            first = resume.apply(self)
            self.mid_task_resume = None
        self.model.train()

        log_every = max(1, int(self.cfg.trainer.logging_frequency))
        bar = tqdm(total=steps, initial=first, desc=f"task {position + 1}/{len(self.stream)} {task.name[:40]}",
                   disable=not acc.is_main_process, dynamic_ncols=True)
        batches = iter(loader)
        start, window = time.perf_counter(), []
        for step in range(first, steps):
            ctx.step, ctx.global_step = step, self.global_step
            for micro in range(accum):
                ctx.micro_batch = micro
                with backend.sync(last_micro=micro == accum - 1):
                    batch = next(batches)
                    algo.observe(batch, position)
                    batch = algo.modify_batch(batch, position)
                    with backend.autocast():
                        out = self.model(batch)
                        penalty = algo.compute_penalty(policy, batch)
                        loss = out["action_loss"] if penalty is None else out["action_loss"] + penalty
                    backend.backward(loss)
                    algo.after_backward(policy)
                    backend.micro_batch_done()
            backend.optimizer_step()
            algo.after_optimizer_step(policy)
            self.global_step += 1
            window.append(float(loss.detach()))
            if acc.is_main_process:
                rate = (step + 1 - first) / max(1e-9, time.perf_counter() - start)
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
                            "lr": backend.lr(),
                            "steps_per_s": rate,
                        },
                        self.global_step,
                    )
                    window = []
            if self.save_interval and self.global_step % self.save_interval == 0 and step + 1 < steps:
                prefix = save_mid_task_checkpoint(self, position, step + 1)
                if acc.is_main_process:
                    tqdm.write(f"[alphabrain] saved {self.run.mid_task_dir / prefix}* (mid-task)")
        bar.close()
        algo.on_task_end(ctx)
        self._save_task_checkpoint(position)

    def checkpoint_name_and_state(self, position: int) -> tuple[str, dict]:
        """The checkpoint prefix of the task at `position` now, and what its _cl_state.json records."""
        task = self.stream.tasks[position]
        task_id = task.origin.get("task_index")
        task_id = task.origin["dataset_index"] if task_id is None else task_id
        return checkpoint_prefix(position, int(task_id), self.global_step), {
            "task_position": position,
            "task_name": task.name,
            "global_step": self.global_step,
            "num_tasks": len(self.stream),
            "framework": type(self.unwrapped).__name__,
            "algorithm": self.algorithm.state_dict(),
        }

    def _save_task_checkpoint(self, position: int) -> None:
        acc = self.accelerator
        is_last = position == len(self.stream) - 1
        if not (bool(self.cfg.continual_learning.save_checkpoint_per_task) or is_last):
            return
        acc.wait_for_everyone()
        if acc.is_main_process:
            prefix, state = self.checkpoint_name_and_state(position)
            self.run.save_task_checkpoint(self.unwrapped, prefix, state, self.algorithm.tensor_state_dict(),
                                          lora=bool(self.cfg.lora.enabled))
            tqdm.write(f"[alphabrain] saved {self.ckpt_dir / prefix}*")
        acc.wait_for_everyone()


# ---------------------------------------------------------------------- CLI
def build_arg_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
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
    stray = [u for u in unknown if "=" not in u and "." not in u]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)} (overrides are key=value)")
    yamls, overrides = split_config_args([*args.config_yaml, *args.overrides, *unknown])

    def run() -> None:
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

    return run_main(run, interrupted="interrupted: complete checkpoints (task ends, mid-task) are kept; "
                                     "rerun with --resume to continue.")


if __name__ == "__main__":
    sys.exit(main())

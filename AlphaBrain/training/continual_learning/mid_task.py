"""Taking a mid-task checkpoint, and continuing a task from one (files: `runs/mid_task.py`).

Beyond the weights, continuing a task exactly where it stopped needs
  - the optimizer and LR schedule (the backend's `state_dict`),
  - how many batches each process has read (`TaskBatchOrder` starts there, reading nothing before),
  - every random stream of every process (python, numpy, torch CPU and CUDA),
  - the algorithm's state as it is now: replay sampling streams and memories move during a task.
What an algorithm builds in `on_task_start` from the task's starting weights (LwF's
teacher, SI's anchors) is not in that state: a resumed run first replays the task
start from the previous task's checkpoint, exactly as the uninterrupted run did,
and then lays the mid-task state over it. The random streams are restored last,
so nothing the replay drew leaks into the continuation.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from AlphaBrain.runs import TaskCheckpoint
from AlphaBrain.runs.checkpoints import load_cl_tensors
from AlphaBrain.runs.mid_task import (
    prune_mid_task,
    rank_state_name,
    read_part,
    read_rank_state,
    trainer_state_name,
    write_part,
)


def capture_rng() -> dict:
    """Every global random stream of this process, as tensors and plain values."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_mid_task_checkpoint(trainer: Any, position: int, task_step: int) -> str:
    """Called by every process after optimizer step `task_step` of the task at `position`; returns the prefix."""
    acc, run, algo = trainer.accelerator, trainer.run, trainer.algorithm
    prefix, state = trainer.checkpoint_name_and_state(position)
    acc.wait_for_everyone()
    # Each process its own part: RNG streams and replay sampling streams are per rank.
    write_part(run.mid_task_dir, rank_state_name(prefix, acc.process_index),
               {"rng": capture_rng(), "algorithm": algo.state_dict()})
    acc.wait_for_everyone()
    if acc.is_main_process:
        accumulation = trainer.backend.accumulation
        parts = [write_part(run.mid_task_dir, trainer_state_name(prefix), {
            "backend": trainer.backend.state_dict(), "task_step": task_step,
            "batches_read": task_step * accumulation,
        })]
        parts += [rank_state_name(prefix, r) for r in range(acc.num_processes)]
        state.update(mid_task=True, task_step=task_step, world_size=acc.num_processes)
        run.save_task_checkpoint(trainer.unwrapped, prefix, state, algo.tensor_state_dict(),
                                 lora=bool(trainer.cfg.lora.enabled), mid_task=True, extra_files=tuple(parts))
        prune_mid_task(run.mid_task_dir, int(trainer.cfg.trainer.keep_last))
    acc.wait_for_everyone()
    return prefix


@dataclass
class MidTaskResume:
    """A mid-task checkpoint this process continues from: where to start reading, and what to lay over the task start."""

    ckpt: TaskCheckpoint
    trainer_state: dict
    rank_state: dict

    @classmethod
    def read(cls, ckpt: TaskCheckpoint, rank: int, world_size: int) -> "MidTaskResume":
        rank_state = read_rank_state(ckpt, rank, world_size)
        return cls(ckpt, read_part(ckpt, trainer_state_name(ckpt.prefix.name)), rank_state)

    @property
    def position(self) -> int:
        return self.ckpt.position

    @property
    def batches_read(self) -> int:
        return int(self.trainer_state["batches_read"])

    def apply(self, trainer: Any) -> int:
        """After the replayed `on_task_start`: weights, algorithm, optimizer, schedule, RNG. Returns the task step."""
        # The algorithm before the weights: loading may rebuild from the model what on_task_start took from it
        # (LwF's teacher), and the model still holds the task's starting weights here.
        trainer.algorithm.load_state_dict(self.rank_state["algorithm"])
        trainer.algorithm.load_tensor_state_dict(load_cl_tensors(self.ckpt))
        trainer.run.restore_weights(trainer.unwrapped, self.ckpt, lora=bool(trainer.cfg.lora.enabled))
        trainer.backend.load_state_dict(self.trainer_state["backend"])
        trainer.global_step = self.ckpt.global_step
        restore_rng(self.rank_state["rng"])  # last: nothing after it may draw before the next step
        return int(self.trainer_state["task_step"])

"""Multitask (joint) training on every task seen so far: the upper bound of a stream.

Idea: after task k the policy should have trained on the union of tasks 0..k, as
if their data had been pooled. Here it is done incrementally with per-task
checkpoints like every other method, so its T x T matrix is directly
comparable: while training task k, each batch is drawn uniformly from the union
of all frames of tasks 0..k. The memory is ER's reference store (`TaskEndMemory`)
with *every* frame of each finished task kept (24 bytes per frame: 1.2 MB for a
50k-frame task), and the share of a batch replaced by memory samples is the memory's share
of the union, n_mem / (n_mem + n_current), so every frame of the union is
equally likely to be drawn (with `balanced_sampling: true`, every task instead
gets an equal share of the batch).

This is not a continual method (it stores all past data) but the reference the
others are measured against: the gap between a method and multitask is what
forgetting still costs it.

Multi-process: as ER, every rank stores the same references and draws its
memory samples with its own RNG stream (seed, task, rank).
"""

from __future__ import annotations

from typing import Any

from AlphaBrain.training.continual_learning.algorithms.base import CLContext
from AlphaBrain.training.continual_learning.algorithms.hparams import Param, check_bool
from AlphaBrain.training.continual_learning.algorithms.registry import register_algorithm
from AlphaBrain.training.continual_learning.algorithms.rehearsal_based.task_memory import TaskEndMemory


def memory_share(batch_size: int, num_memory: int, num_current: int) -> int:
    """Samples of a batch drawn from memory so that the union is sampled uniformly; >= 1 current sample kept."""
    if batch_size < 2 or num_memory <= 0:
        return 0
    share = round(batch_size * num_memory / (num_memory + max(1, num_current)))
    return min(max(1, share), batch_size - 1)


@register_algorithm("multitask", aliases=("joint",))
class Multitask(TaskEndMemory):
    name = "multitask"
    # No buffer_size_per_task: the memory keeps every frame of each finished task.
    HYPERPARAMETERS = {"balanced_sampling": Param(False, check_bool)}

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.balanced_sampling = self.hparams["balanced_sampling"]
        self._current_size = 0

    def on_task_start(self, ctx: CLContext) -> None:
        super().on_task_start(ctx)
        self._current_size = len(ctx.task_dataset)

    def modify_batch(self, batch: list[dict], task_id: int) -> list[dict]:
        if self.buffer.is_empty():
            return batch
        if self.balanced_sampling:
            # Equal share per task: the current task is one of (stored + 1) tasks.
            tasks = len(self.buffer.get_task_ids()) + 1
            n = memory_share(len(batch), tasks - 1, 1)
            drawn = self.buffer.sample_balanced(n)
        else:
            n = memory_share(len(batch), len(self.buffer), self._current_size)
            drawn = self.buffer.sample(n)
        return batch[: len(batch) - n] + drawn

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

Incremental joint training still favours early tasks: with T tasks of S steps,
task 0 is in every batch for T x S steps, the last task only in 1/T of the
batches of the last S steps. `whole_stream: true` removes that: from the first
step, every batch is drawn uniformly from all tasks of the stream (the memory
holds every other task before training starts), so the final checkpoint is the
offline joint-training reference (LIBERO's "multitask") with every task given
the same share of the T x S steps. Its rows before the last are then not a
continual result: row k has seen tasks after k.

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
    HYPERPARAMETERS = {"balanced_sampling": Param(False, check_bool), "whole_stream": Param(False, check_bool)}

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.balanced_sampling = self.hparams["balanced_sampling"]
        self.whole_stream = self.hparams["whole_stream"]
        self._current_size = 0

    def on_task_start(self, ctx: CLContext) -> None:
        super().on_task_start(ctx)
        self._current_size = len(ctx.task_dataset)
        if self.whole_stream:
            if len(ctx.stream_tasks) != ctx.num_tasks:
                raise RuntimeError("multitask whole_stream needs the stream's tasks in CLContext.stream_tasks.")
            # Every task joins the memory now (population is per (seed, task), so a resume stores the same
            # references); the current task is drawn from its own loader and left out of memory draws.
            for position, dataset in enumerate(ctx.stream_tasks):
                if self.buffer.get_task_size(position) == 0:
                    self.buffer.populate_from_dataset(position, dataset)
            self.buffer.attach_source(ctx.task_dataset)

    def on_task_end(self, ctx: CLContext) -> None:
        if not self.whole_stream:
            super().on_task_end(ctx)

    def modify_batch(self, batch: list[dict], task_id: int) -> list[dict]:
        # whole_stream: the memory holds the current task too; its frames come from the loader only.
        exclude = task_id if self.whole_stream else None
        stored = [t for t in self.buffer.get_task_ids() if t != exclude]
        if not stored:
            return batch
        if self.balanced_sampling:
            # Equal share per task: the current task is one of (stored + 1) tasks.
            drawn = self.buffer.sample_balanced(memory_share(len(batch), len(stored), 1), exclude=exclude)
        else:
            others = sum(self.buffer.get_task_size(t) for t in stored)
            drawn = self.buffer.sample(memory_share(len(batch), others, self._current_size), exclude=exclude)
        return batch[: len(batch) - len(drawn)] + drawn

"""Experience Replay (Chaudhry et al. 2019; Ratcliff 1990).

A per-task reservoir memory filled once at each task end; every step of a later
task replaces `max(2, round(B * replay_batch_ratio))` samples of the batch with
samples drawn from memory (uniformly over all stored samples, or equally per
stored task with `balanced_sampling`).

Multi-process runs: every rank populates the same memory (same seed, the whole
task dataset, not its shard), and each rank draws its replay samples with its
own RNG stream (seed, task, rank), just as each rank sees its own shard of the
current task.
"""

from __future__ import annotations

from typing import Any

from AlphaBrain.training.continual_learning.algorithms.hparams import Param, check_bool, check_ratio
from AlphaBrain.training.continual_learning.algorithms.registry import register_algorithm
from AlphaBrain.training.continual_learning.algorithms.rehearsal_based.task_memory import TaskEndMemory


def num_replay_samples(batch_size: int, ratio: float) -> int:
    """How many of a batch of `batch_size` are replaced: max(2, round(B·ratio)), leaving >= 1 current sample."""
    if batch_size < 2:
        return 0
    return min(max(2, round(batch_size * ratio)), batch_size - 1)


@register_algorithm("er", aliases=("experience_replay",))
class ER(TaskEndMemory):
    name = "er"
    HYPERPARAMETERS = {
        **TaskEndMemory.HYPERPARAMETERS,
        "replay_batch_ratio": Param(0.3, check_ratio, hint=" (it is the fraction of each batch replaced by replay samples)"),
        "balanced_sampling": Param(False, check_bool),
    }

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.replay_batch_ratio = self.hparams["replay_batch_ratio"]
        self.balanced_sampling = self.hparams["balanced_sampling"]

    def modify_batch(self, batch: list[dict], task_id: int) -> list[dict]:
        if self.buffer.is_empty():
            return batch
        n = num_replay_samples(len(batch), self.replay_batch_ratio)
        if n == 0:
            return batch
        draw = self.buffer.sample_balanced if self.balanced_sampling else self.buffer.sample
        return batch[: len(batch) - n] + draw(n)

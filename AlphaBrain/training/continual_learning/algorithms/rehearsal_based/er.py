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

from AlphaBrain.training.continual_learning.algorithms.registry import register_algorithm
from AlphaBrain.training.continual_learning.algorithms.rehearsal_based.task_memory import TaskEndMemory
from AlphaBrain.utils.errors import ConfigError


def num_replay_samples(batch_size: int, ratio: float) -> int:
    """How many of a batch of `batch_size` are replaced: max(2, round(B·ratio)), leaving >= 1 current sample."""
    if batch_size < 2:
        return 0
    return min(max(2, round(batch_size * ratio)), batch_size - 1)


@register_algorithm("er", aliases=("experience_replay",))
class ER(TaskEndMemory):
    name = "er"
    HYPERPARAMETERS = {
        "buffer_size_per_task": 500,
        "replay_batch_ratio": 0.3,
        "balanced_sampling": False,
    }

    def __init__(self, buffer_size_per_task: int = 500, replay_batch_ratio: float = 0.3, balanced_sampling: bool = False):
        if not isinstance(buffer_size_per_task, int) or isinstance(buffer_size_per_task, bool) or buffer_size_per_task < 1:
            raise ConfigError(
                f"continual_learning buffer_size_per_task must be a positive integer, got {buffer_size_per_task!r}."
            )
        super().__init__(buffer_size_per_task)
        if isinstance(replay_batch_ratio, bool) or not isinstance(replay_batch_ratio, (int, float)) \
                or not 0.0 < float(replay_batch_ratio) < 1.0:
            raise ConfigError(
                f"continual_learning replay_batch_ratio must be strictly between 0 and 1, got {replay_batch_ratio!r} "
                "(it is the fraction of each batch replaced by replay samples)."
            )
        if not isinstance(balanced_sampling, bool):
            raise ConfigError(f"continual_learning balanced_sampling must be true or false, got {balanced_sampling!r}.")
        self.hparams.update(replay_batch_ratio=float(replay_batch_ratio), balanced_sampling=balanced_sampling)
        self.replay_batch_ratio = float(replay_batch_ratio)
        self.balanced_sampling = balanced_sampling

    def modify_batch(self, batch: list[dict], task_id: int) -> list[dict]:
        if self.buffer.is_empty():
            return batch
        n = num_replay_samples(len(batch), self.replay_batch_ratio)
        if n == 0:
            return batch
        draw = self.buffer.sample_balanced if self.balanced_sampling else self.buffer.sample
        return batch[: len(batch) - n] + draw(n)

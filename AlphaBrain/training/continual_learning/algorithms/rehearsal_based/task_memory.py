"""The memory lifecycle ER, MIR, A-GEM, DER++ and Multitask share: a per-task reservoir of references, filled at each task end.

Population is `ReplayBuffer.populate_from_dataset`: the whole task dataset, RNG
(seed, task), so every rank stores the same references; `buffer_size_per_task`
of them per task, or every frame of the task for a method that declares no such
hyperparameter (Multitask). What differs between methods is the sampling
stream, chosen by `rank_independent_sampling`: False = (seed, task, rank), each
rank draws its own memory batches, as ER does; True = (seed, task), every rank
draws the same ones (A-GEM needs this so that its gradient projection is
identical on every rank).
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

from AlphaBrain.training.continual_learning.algorithms.base import CLAlgorithm, CLContext
from AlphaBrain.training.continual_learning.algorithms.hparams import Param, check_int
from AlphaBrain.training.continual_learning.algorithms.replay_buffer import ReplayBuffer


class TaskEndMemory(CLAlgorithm):
    """Base of methods with a reference memory filled at task end; subclasses call super() in the hooks they extend."""

    HYPERPARAMETERS = {"buffer_size_per_task": Param(500, check_int)}
    rank_independent_sampling: ClassVar[bool] = False

    def __init__(self, **params: Any):
        super().__init__(**params)
        # None (no such hyperparameter): every frame of a finished task is kept.
        self.buffer = ReplayBuffer(buffer_size_per_task=self.hparams.get("buffer_size_per_task"))

    def bind_runtime(self, *, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        super().bind_runtime(seed=seed, rank=rank, world_size=world_size)
        self.buffer.seed = int(seed)

    def on_task_start(self, ctx: CLContext) -> None:
        # After a resume the references come from _cl_state.json; they decode from the base dataset.
        self.buffer.attach_source(ctx.task_dataset)
        stream = (ctx.task_id,) if self.rank_independent_sampling else (ctx.task_id, self.rank)
        self.buffer.reseed_sampling(*stream)

    def on_task_end(self, ctx: CLContext) -> None:
        self.buffer.populate_from_dataset(ctx.task_id, ctx.task_dataset)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "hparams": dict(self.hparams), "buffer": self.buffer.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        # Stored references come back exactly; the configured size still governs future tasks.
        self.buffer.load_state_dict(state.get("buffer", {}))
        self.buffer.buffer_size_per_task = self.hparams.get("buffer_size_per_task")

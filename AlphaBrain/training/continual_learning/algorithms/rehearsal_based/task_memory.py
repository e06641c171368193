"""The memory lifecycle ER, MIR, A-GEM and DER++ share: ER's per-task reservoir of references, filled at each task end.

Population is ER's (`ReplayBuffer.populate_from_dataset`: the whole task
dataset, RNG (seed, task)), so every rank stores the same references. What
differs between methods is the sampling stream, chosen by
`rank_independent_sampling`: False = (seed, task, rank), each rank draws its own
memory batches, as ER does; True = (seed, task), every rank draws the same ones
(A-GEM needs this so that its gradient projection is identical on every rank).
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

from AlphaBrain.training.continual_learning.algorithms.base import CLAlgorithm, CLContext
from AlphaBrain.training.continual_learning.algorithms.hparams import check_int
from AlphaBrain.training.continual_learning.algorithms.replay_buffer import ReplayBuffer


class TaskEndMemory(CLAlgorithm):
    """Base of methods with a reference memory filled at task end; subclasses call super() in the hooks they extend."""

    rank_independent_sampling: ClassVar[bool] = False

    def __init__(self, buffer_size_per_task: int = 500):
        self.buffer = ReplayBuffer(buffer_size_per_task=check_int("buffer_size_per_task", buffer_size_per_task))
        self.hparams: dict[str, Any] = {"buffer_size_per_task": int(buffer_size_per_task)}

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
        self.buffer.buffer_size_per_task = int(self.hparams["buffer_size_per_task"])

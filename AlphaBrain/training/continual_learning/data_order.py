"""The order in which one process reads a task's frames: endless, and resumable at any batch.

Epoch e of task k is a permutation of the task's frames drawn from (seed, k, e)
alone, cut into batches (the last partial one dropped when the task holds at
least one full batch). Process r of P takes batches r, r+P, ... of each epoch,
whose batch count is cut to a multiple of P so that every process steps the same
number of times. Batch i of a process therefore depends on nothing but i: a run
resumed inside a task starts reading at the batch it stopped at, without
reading (or decoding) the batches before it.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import Sampler

from AlphaBrain.training.continual_learning.algorithms.rng import derive_seed

DATA_ORDER_STREAM = 0xDA7A


class TaskBatchOrder(Sampler[list[int]]):
    """Batch sampler over one task's frames for one process; `start` skips that many of its batches."""

    def __init__(self, num_frames: int, batch_size: int, seed: int, position: int,
                 rank: int = 0, world_size: int = 1, start: int = 0) -> None:
        if num_frames <= 0:
            raise ValueError(f"task {position} has no frames to train on")
        self.num_frames, self.batch_size = int(num_frames), int(batch_size)
        self.seed, self.position = int(seed), int(position)
        self.rank, self.world_size, self.start = int(rank), int(world_size), int(start)
        full = self.num_frames // self.batch_size
        global_batches = full if full > 0 else 1  # a task smaller than one batch is one partial batch
        # At least one batch per process: with fewer batches than processes, the epoch's batches repeat.
        self.global_per_epoch = max(self.world_size, global_batches - global_batches % self.world_size)
        self.per_epoch = self.global_per_epoch // self.world_size

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """This process's batches of `epoch`, in order."""
        gen = torch.Generator().manual_seed(derive_seed(self.seed, self.position, epoch, DATA_ORDER_STREAM))
        perm = torch.randperm(self.num_frames, generator=gen).tolist()
        size = min(self.batch_size, self.num_frames)
        batches = [perm[i:i + size] for i in range(0, self.num_frames - size + 1, size)]
        chosen = [batches[i % len(batches)] for i in range(self.global_per_epoch)]
        return chosen[self.rank::self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        epoch, offset = divmod(self.start, self.per_epoch)
        while True:
            yield from self.epoch_batches(epoch)[offset:]
            epoch, offset = epoch + 1, 0

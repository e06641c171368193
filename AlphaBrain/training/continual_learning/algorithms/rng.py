"""Seeded randomness for algorithms: every random stream derived from integers, none taken from the trainer's.

An algorithm's random choices (which frames a Fisher uses, which stored samples
a step replays, the noise of a forward it runs for itself) must not depend on
how much randomness the training loop consumed before: that keeps a resumed run
exact and makes every rank agree where it must. So each stream is derived from
integers the algorithm knows, by convention in this order:

    (run seed, task, [rank], [step], [stream tag])

leaving out what the stream must not depend on (no rank where every rank has to
draw the same) or need not (no task beside a run-wide step) and ending with a tag that separates two users of the same
integers (a nonzero one: like numpy's SeedSequence, which derives every stream
here, a derivation ignores trailing zeros, so (seed, task, 0) is (seed, task)).

`numpy_rng` gives a numpy Generator for such a stream, `derive_seed` an integer
seed for torch, and `seeded_torch_rng` runs a block under torch's RNG seeded
with it and gives the caller's RNG state back afterwards. A numpy stream that a
JSON state carries on (`generator.bit_generator.state`) comes back with
`numpy_rng_from_state`.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping

import numpy as np
import torch

# Stream tags: the last integer of a derivation, where two streams would otherwise share their integers.
FISHER_STREAM = 0xE3C      # EWC: the Fisher's frames and the noise of its forwards, from (seed, task)
MIR_CACHE_STREAM = 1       # MIR: draws from the cache, beside the buffer's own (seed, task, rank) stream


def numpy_rng(*entropy: int) -> np.random.Generator:
    """A numpy Generator seeded from the integers (run seed, task, ...): the same integers give the same draws."""
    return np.random.default_rng([int(e) for e in entropy])


def numpy_rng_from_state(state: Mapping[str, Any]) -> np.random.Generator:
    """The numpy Generator whose `bit_generator.state` was saved as `state` (it draws on from there)."""
    rng = np.random.default_rng()
    rng.bit_generator.state = dict(state)
    return rng


def derive_seed(*entropy: int) -> int:
    """A 63-bit seed (fits torch's manual_seed) derived from the integers (run seed, task, rank, step, ...)."""
    state = np.random.SeedSequence([int(e) for e in entropy]).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


@contextlib.contextmanager
def seeded_torch_rng(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Run the block with torch's CPU RNG, and `device`'s CUDA RNG if it is a GPU, seeded with `seed`.

    The caller's RNG states are restored when the block ends (also on an exception), so the
    training stream is exactly as if the block had not run.
    """
    cuda = []
    if device is not None and device.type == "cuda":
        cuda = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=cuda, device_type="cuda"):
        torch.random.default_generator.manual_seed(int(seed))
        for index in cuda:
            torch.cuda.default_generators[index].manual_seed(int(seed))
        yield

"""Per-task reservoir memory of *references* to training samples.

The buffer stores, per task, the (dataset_index, episode_index, frame_index)
of each kept sample: 24 bytes, not a decoded image + action chunk. Samples
are decoded from the dataset when drawn. `state_dict()` holds the references
and the RNG state, so a resumed run gets exactly the same memory without
re-reading any data.

Sampling randomness (which stored samples a step replays) has its own RNG,
separate from population, so changing how often we sample never changes what
is stored.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np

from AlphaBrain.training.continual_learning.algorithms.hparams import check_int
from AlphaBrain.training.continual_learning.algorithms.rng import numpy_rng, numpy_rng_from_state

REF_FIELDS = ("dataset_index", "episode_index", "frame_index")


def reservoir_indices(n_items: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Algorithm R (Vitter 1985) over a stream of `n_items`: a uniform k-subset, in stream order.

    Vectorized: draw every replacement position at once, then apply only the
    hits (about k·ln(n/k) of them).
    """
    if k >= n_items:
        return np.arange(n_items, dtype=np.int64)
    reservoir = np.arange(k, dtype=np.int64)
    stream = np.arange(k, n_items, dtype=np.int64)
    slots = rng.integers(0, stream + 1)  # item i replaces slot j ~ U{0..i}, kept if j < k
    for i, j in zip(stream[slots < k], slots[slots < k]):
        reservoir[j] = i
    return np.sort(reservoir)


def _size(buffer_size_per_task: Optional[int]) -> Optional[int]:
    return None if buffer_size_per_task is None else check_int("buffer_size_per_task", buffer_size_per_task)


class ReplayBuffer:
    """Per-task reservoir of sample references: `buffer_size_per_task` per task, or every frame with None.

    Usage::

        buffer = ReplayBuffer(buffer_size_per_task=500)
        buffer.populate_from_dataset(task_id=0, dataset=task0_dataset)   # after task 0
        replay = buffer.sample(batch_size=4)                              # list[dict] during task 1
    """

    def __init__(self, buffer_size_per_task: Optional[int] = 500, seed: int = 42):
        self.buffer_size_per_task = _size(buffer_size_per_task)
        self.seed = int(seed)
        self._refs: dict[int, np.ndarray] = {}   # task_id -> int64[k, 3]
        self._source: Any = None                  # dataset exposing get_ref(ref) -> sample dict
        self._rng = numpy_rng(self.seed)

    # ---------------------------------------------------------------- memory
    def populate_from_dataset(self, task_id: int, dataset: Any, num_samples: Optional[int] = None) -> int:
        """Keep a reservoir sample of `dataset` (which must provide `ref(i)` and `base_dataset`) for `task_id`.

        `num_samples` (default: the buffer's size per task; every frame when that is None)
        references are kept. Population of task t uses an RNG derived from (seed, t): the
        memory of a task does not depend on what happened before it, which keeps resumes exact.
        """
        n = len(dataset)
        if n == 0:
            raise ValueError(f"Task {task_id} has an empty dataset; nothing to store in the replay buffer.")
        k = self.buffer_size_per_task if num_samples is None else int(num_samples)
        chosen = reservoir_indices(n, n if k is None else k, numpy_rng(self.seed, task_id))
        self._refs[int(task_id)] = np.asarray([dataset.ref(int(i)) for i in chosen], dtype=np.int64).reshape(-1, 3)
        self.attach_source(dataset)
        return len(chosen)

    def attach_source(self, dataset: Any) -> None:
        """Where references are decoded from: the stream's base (mixture) dataset."""
        self._source = getattr(dataset, "base_dataset", dataset)

    def clear(self) -> None:
        self._refs.clear()

    def get_task_ids(self) -> list[int]:
        return sorted(self._refs)

    def get_task_size(self, task_id: int) -> int:
        refs = self._refs.get(int(task_id))
        return 0 if refs is None else len(refs)

    def __len__(self) -> int:
        return sum(len(r) for r in self._refs.values())

    def is_empty(self) -> bool:
        return len(self) == 0

    def nbytes(self) -> int:
        """Memory held by the stored references."""
        return sum(r.nbytes for r in self._refs.values())

    def reseed_sampling(self, *entropy: int) -> None:
        """Restart the sampling RNG from (seed, *entropy), e.g. (task_id, rank)."""
        self._rng = numpy_rng(self.seed, *entropy)

    # -------------------------------------------------------------- sampling
    def sample_slots(self, batch_size: int, exclude: Optional[int] = None) -> list[tuple[int, int]]:
        """Uniform over every stored sample: (task, position in that task's memory), without replacement when it fits.

        Methods that keep something per stored sample (DER++'s outputs) index it with
        these positions; `samples_at` decodes them. `exclude`: a task id whose samples are not drawn.
        """
        tasks = [t for t in self.get_task_ids() if t != exclude]
        if batch_size <= 0 or not tasks:
            return []
        sizes = np.asarray([len(self._refs[t]) for t in tasks])
        ends = np.cumsum(sizes)
        pick = self._rng.choice(int(ends[-1]), size=batch_size, replace=batch_size > int(ends[-1]))
        owner = np.searchsorted(ends, pick, side="right")  # which task each global index falls in
        local = pick - (ends[owner] - sizes[owner])
        return [(tasks[o], int(i)) for o, i in zip(owner, local)]

    def sample_refs(self, batch_size: int, exclude: Optional[int] = None) -> list[tuple[int, tuple[int, int, int]]]:
        """Uniform over every stored sample (but those of task `exclude`): without replacement when the batch fits."""
        return [self._ref_of(task, i) for task, i in self.sample_slots(batch_size, exclude)]

    def sample_balanced_refs(self, batch_size: int, exclude: Optional[int] = None) -> list[tuple[int, tuple[int, int, int]]]:
        """Equal draws per stored task (but `exclude`); a remainder goes to randomly chosen tasks (counts differ by <= 1)."""
        tasks = [t for t in self.get_task_ids() if t != exclude]
        if batch_size <= 0 or not tasks:
            return []
        counts = np.full(len(tasks), batch_size // len(tasks))
        counts[self._rng.choice(len(tasks), size=batch_size % len(tasks), replace=False)] += 1
        out = []
        for task, count in zip(tasks, counts):
            size = len(self._refs[task])
            for i in self._rng.choice(size, size=int(count), replace=int(count) > size):
                out.append(self._ref_of(task, int(i)))
        order = self._rng.permutation(len(out))
        return [out[i] for i in order]

    def sample(self, batch_size: int, exclude: Optional[int] = None) -> list[dict]:
        """`batch_size` decoded samples drawn uniformly over all stored samples but task `exclude`'s ([] if none)."""
        return self.decode(self.sample_refs(batch_size, exclude))

    def sample_balanced(self, batch_size: int, exclude: Optional[int] = None) -> list[dict]:
        """`batch_size` decoded samples with equal representation of every stored task but `exclude` ([] if none)."""
        return self.decode(self.sample_balanced_refs(batch_size, exclude))

    def samples_at(self, slots: list[tuple[int, int]]) -> list[dict]:
        """Decode the stored samples at (task, position) slots, in the order given."""
        return self.decode([self._ref_of(task, i) for task, i in slots])

    def _ref_of(self, task: int, i: int) -> tuple[int, tuple[int, int, int]]:
        row = self._refs[task][i]
        return task, (int(row[0]), int(row[1]), int(row[2]))

    def decode(self, refs: list[tuple[int, tuple[int, int, int]]]) -> list[dict]:
        """Sample dicts for references from `sample_refs` (a method that ranks references first, e.g. MIR)."""
        if refs and self._source is None:
            raise RuntimeError(
                "ReplayBuffer has references but no source dataset; call populate_from_dataset or attach_source first."
            )
        samples = []
        for task, ref in refs:
            sample = self._source.get_ref(ref)
            sample["task_id"] = task
            samples.append(sample)
        return samples

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict:
        return {
            "buffer_size_per_task": self.buffer_size_per_task,
            "seed": self.seed,
            "ref_fields": list(REF_FIELDS),
            "refs": {str(t): r.tolist() for t, r in sorted(self._refs.items())},
            "task_sizes": {str(t): len(r) for t, r in sorted(self._refs.items())},
            "rng_state": self._rng.bit_generator.state,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.buffer_size_per_task = _size(state.get("buffer_size_per_task", self.buffer_size_per_task))
        self.seed = int(state.get("seed", self.seed))
        self._refs = {
            int(t): np.asarray(rows, dtype=np.int64).reshape(-1, 3) for t, rows in state.get("refs", {}).items()
        }
        if "rng_state" in state:
            self._rng = numpy_rng_from_state(state["rng_state"])

"""The per-task view of a base dataset: the frames of one task of a stream, nothing copied."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
from torch.utils.data import Dataset


def build_episode_task_map(dataset: Any) -> dict[int, list[int]]:
    """task_index -> episode indices of a single LeRobot dataset."""
    return dataset.episode_task_map()


class TaskFilteredDataset(Dataset):
    """The frames of one CL task, as a view over a base dataset (no data is copied).

    Either give `task_indices` + `episode_task_map` (the classic LIBERO case:
    keep the episodes whose task_index is listed) or the global frame
    `indices` directly (used for by_dataset streams). Each sample gets
    `task_id` = the task's position in the stream.
    """

    def __init__(
        self,
        base_dataset: Any,
        task_indices: Optional[Sequence[int]] = None,
        episode_task_map: Optional[dict[int, list[int]]] = None,
        *,
        indices: Optional[np.ndarray] = None,
        task_id: int = 0,
        dataset_index: int = 0,
        name: str = "",
        instruction: str = "",
    ):
        self.base_dataset = base_dataset
        self.task_id = int(task_id)
        self.name = name
        self.instruction = instruction
        self.origin: dict = {"dataset_index": dataset_index, "task_index": None}
        if indices is None:
            if task_indices is None or episode_task_map is None:
                raise ValueError("TaskFilteredDataset needs either `indices` or `task_indices` + `episode_task_map`.")
            episodes = sorted(e for t in task_indices for e in episode_task_map.get(int(t), []))
            sub = base_dataset.datasets[dataset_index] if hasattr(base_dataset, "datasets") else base_dataset
            local = sub.indices_for_episodes(episodes)
            indices = local + _dataset_offset(base_dataset, dataset_index)
        self.indices = np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def ref(self, i: int) -> tuple[int, int, int]:
        """(dataset_index, episode_index, frame_index) of the i-th sample."""
        return self.base_dataset.ref(int(self.indices[i]))

    def get_ref(self, ref: tuple[int, int, int]) -> dict:
        sample = self.base_dataset.get_ref(ref)
        sample["task_id"] = self.task_id
        return sample

    def __getitem__(self, i: int) -> dict:
        sample = self.base_dataset[int(self.indices[i])]
        sample["task_id"] = self.task_id
        return sample

    def save_dataset_statistics(self, path: str) -> None:
        """Delegate to the base dataset's statistics writer."""
        from AlphaBrain.dataloader import compute_dataset_statistics, save_dataset_statistics

        datasets = getattr(self.base_dataset, "datasets", [self.base_dataset])
        save_dataset_statistics(compute_dataset_statistics(datasets), path)


def _dataset_offset(base_dataset: Any, dataset_index: int) -> int:
    """Global index of the first frame of sub-dataset `dataset_index` in a mixture."""
    subs = getattr(base_dataset, "datasets", None)
    if subs is None:
        return 0
    return int(sum(len(d) for d in subs[:dataset_index]))

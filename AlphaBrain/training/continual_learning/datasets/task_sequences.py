"""Named CL task sequences and the per-task view of a dataset.

A task sequence names a base data mixture and how to cut it into tasks. The
four LIBERO suites are registered here; any other LeRobot dataset or mixture
can be streamed through an inline `continual_learning.task_sequence` block
(see custom_streams.py).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
from torch.utils.data import Dataset

from AlphaBrain.utils.errors import unknown_name

CL_TASK_SEQUENCES: dict[str, dict[str, Any]] = {
    "libero_goal": {
        "base_data_mix": "libero_goal",
        "num_tasks": 10,
        "task_stream_mode": "by_task_index",
        "description": "LIBERO-Goal: 10 goals in one kitchen scene, same objects, different instructions.",
    },
    "libero_spatial": {
        "base_data_mix": "libero_spatial",
        "num_tasks": 10,
        "task_stream_mode": "by_task_index",
        "description": "LIBERO-Spatial: pick the same bowl from 10 different spatial layouts.",
    },
    "libero_object": {
        "base_data_mix": "libero_object",
        "num_tasks": 10,
        "task_stream_mode": "by_task_index",
        "description": "LIBERO-Object: pick 10 different grocery objects into the basket.",
    },
    "libero_10": {
        "base_data_mix": "libero_10",
        "num_tasks": 10,
        "task_stream_mode": "by_task_index",
        "description": "LIBERO-Long (libero_10): 10 long-horizon, multi-step tasks.",
    },
}
CL_TASK_SEQUENCES["libero_long"] = {**CL_TASK_SEQUENCES["libero_10"], "base_data_mix": "libero_long"}


def _register_libero_order() -> None:
    """The LIBERO streams train in the suites' official task order (matched by task name), whatever
    order a LeRobot conversion gives its task_index values; and libero_goal_mini, whose data is generated."""
    from AlphaBrain.benchmarks.libero.tasks import MINI_SUITE, default_dataset_dir, suite_task_specs
    from AlphaBrain.utils.text import slugify

    for name, entry in CL_TASK_SEQUENCES.items():
        if name.startswith("libero_"):
            entry["task_names"] = [slugify(spec.instruction) for spec in suite_task_specs(name)]
    mini = suite_task_specs(MINI_SUITE)
    CL_TASK_SEQUENCES[MINI_SUITE] = {
        "base_data_mix": str(default_dataset_dir(MINI_SUITE)),
        "num_tasks": len(mini),
        "task_stream_mode": "by_task_index",
        "task_names": [slugify(spec.instruction) for spec in mini],
        "description": "LIBERO-Goal mini: LIBERO-Goal tasks with demos from scripted experts, generated on this machine.",
        "missing_hint": f"generate the demos first: python -m AlphaBrain.benchmarks.libero.generate --stream {MINI_SUITE}",
    }


def _register_builtin_benchmarks() -> None:
    # The simulator benchmarks add their streams (data generated on the machine, e.g. metaworld_cl5).
    from AlphaBrain.benchmarks.metaworld import register_cl_sequences

    register_cl_sequences()
    _register_libero_order()


_register_builtin_benchmarks()


def get_task_sequence(name: str) -> dict[str, Any]:
    """The registered sequence `name` (a copy); an unknown name lists the valid ones."""
    if name not in CL_TASK_SEQUENCES:
        raise unknown_name("task sequence (continual_learning.task_sequence / --dataset)", name, CL_TASK_SEQUENCES)
    return dict(CL_TASK_SEQUENCES[name])


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

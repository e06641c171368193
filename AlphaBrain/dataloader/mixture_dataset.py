"""Several LeRobot datasets behind one index space, with the single-dataset API.

Global index = dataset offset + index inside that dataset. A sample keeps its
`dataset_index`, so a ref `(dataset_index, episode_index, frame_index)` names a
frame unambiguously across the mixture (replay buffers store refs, not tensors).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np
from torch.utils.data import Dataset

from AlphaBrain.dataloader.indexing import Ref, check_index
from AlphaBrain.dataloader.lerobot_dataset import LeRobotSingleDataset
from AlphaBrain.dataloader.spec import DataSpec
from AlphaBrain.utils.errors import ConfigError, DatasetError

if TYPE_CHECKING:
    from AlphaBrain.dataloader.statistics import Normalizer


class LeRobotMixtureDataset(Dataset):
    """Concatenation of `LeRobotSingleDataset`s.

    Each sub-dataset's `dataset_index` is set to its position in `datasets`.
    `weights` are sampling weights for the trainer (`frame_weights()` turns them
    into per-frame weights for a WeightedRandomSampler); iteration order itself
    is plain concatenation. None = every dataset weight 1.0.
    """

    def __init__(self, datasets: Sequence[LeRobotSingleDataset], weights: Sequence[float] | None = None) -> None:
        if not datasets:
            raise DatasetError("a dataset mixture needs at least one dataset")
        if weights is None:
            weights = [1.0] * len(datasets)
        if len(weights) != len(datasets):
            raise ConfigError(f"mixture has {len(datasets)} datasets but {len(weights)} weights")
        if any(float(w) < 0 for w in weights) or not any(float(w) > 0 for w in weights):
            raise ConfigError(f"mixture weights must be >= 0 and not all 0, got {list(weights)}")
        self.datasets = list(datasets)
        self.weights = [float(w) for w in weights]
        for k, ds in enumerate(self.datasets):
            ds.dataset_index = k
        self._offsets = np.cumsum([0] + [len(d) for d in self.datasets]).astype(np.int64)

    # ------------------------------------------------------------------ shape of the mixture

    def __len__(self) -> int:
        return int(self._offsets[-1])

    @property
    def tasks(self) -> list[dict[int, str]]:
        """task_index -> instruction, one mapping per sub-dataset (task indices are per dataset)."""
        return [ds.tasks for ds in self.datasets]

    @property
    def embodiments(self) -> list[str]:
        return [ds.embodiment for ds in self.datasets]

    @property
    def action_horizon(self) -> int:
        return self.datasets[0].action_horizon

    def offset(self, dataset_index: int) -> int:
        """Global index of the first frame of sub-dataset `dataset_index`."""
        return int(self._offsets[dataset_index])

    def spec(self, action_horizon: int | None = None) -> DataSpec:
        specs = [ds.spec(action_horizon) for ds in self.datasets]
        if any(s != specs[0] for s in specs[1:]):
            listing = "; ".join(
                f"{ds.root}: state {s.state_dim}, action {s.action_dim}, cameras {s.num_cameras}, image {s.image_size}"
                for ds, s in zip(self.datasets, specs)
            )
            raise DatasetError(
                f"the datasets of this mixture have different shapes and cannot train one policy: {listing}"
            )
        return specs[0]

    @property
    def data_spec(self) -> DataSpec:
        return self.spec()

    def frame_weights(self) -> np.ndarray:
        """float64[len(self)]: each dataset's weight spread evenly over its frames."""
        out = np.empty(len(self), dtype=np.float64)
        for k, ds in enumerate(self.datasets):
            out[self._offsets[k] : self._offsets[k + 1]] = self.weights[k] / max(len(ds), 1)
        return out

    def set_normalizer(self, normalizer: "Normalizer | Mapping[str, Normalizer] | None") -> None:
        """One Normalizer for all datasets, or a mapping embodiment -> Normalizer."""
        for ds in self.datasets:
            if normalizer is None or not isinstance(normalizer, Mapping):
                ds.set_normalizer(normalizer)
            elif ds.embodiment in normalizer:
                ds.set_normalizer(normalizer[ds.embodiment])
            else:
                raise DatasetError(
                    f"no normalizer for embodiment {ds.embodiment!r} of {ds.root}; have: {', '.join(normalizer)}"
                )

    # ------------------------------------------------------------------ indexing

    def _locate(self, i: int) -> tuple[int, int]:
        i = check_index(i, len(self), "mixture")
        k = int(np.searchsorted(self._offsets, i, side="right") - 1)
        return k, i - int(self._offsets[k])

    def _dataset(self, dataset_index: int) -> LeRobotSingleDataset:
        if not 0 <= int(dataset_index) < len(self.datasets):
            raise DatasetError(f"no dataset {dataset_index} in a mixture of {len(self.datasets)}")
        return self.datasets[int(dataset_index)]

    def ref(self, i: int) -> Ref:
        k, local = self._locate(i)
        return self.datasets[k].ref(local)

    def get_ref(self, ref: Ref) -> dict[str, Any]:
        dataset_index, episode_index, frame_index = ref
        return self._dataset(dataset_index).get(episode_index, frame_index)

    def get(self, dataset_index: int, episode_index: int, frame_index: int) -> dict[str, Any]:
        return self._dataset(dataset_index).get(episode_index, frame_index)

    def __getitem__(self, i: int) -> dict[str, Any]:
        k, local = self._locate(i)
        return self.datasets[k][local]

    def episode_task_map(self, dataset_index: int = 0) -> dict[int, list[int]]:
        return self._dataset(dataset_index).episode_task_map()

    def indices_for_episodes(self, episode_ids: Iterable[int], dataset_index: int = 0) -> np.ndarray:
        """Global (mixture) frame indices of episodes of sub-dataset `dataset_index`."""
        return self._dataset(dataset_index).indices_for_episodes(episode_ids) + self.offset(dataset_index)

    def indices_for_dataset(self, dataset_index: int) -> np.ndarray:
        """All global frame indices of one sub-dataset (for task_stream_mode by_dataset)."""
        self._dataset(dataset_index)
        return np.arange(self._offsets[dataset_index], self._offsets[dataset_index + 1], dtype=np.int64)

    def __repr__(self) -> str:
        inner = ", ".join(f"{ds.root.name} (w={w:g})" for ds, w in zip(self.datasets, self.weights))
        return f"LeRobotMixtureDataset([{inner}], frames={len(self)})"

"""LeRobot datasets (v2.1 and v3.0) for VLA training: reading, writing, mixtures, statistics.

    ds = load_mixture("libero_goal", data_root_dir, action_horizon=8)
    stats = compute_dataset_statistics(ds)
    ds.set_normalizer({e: Normalizer(s) for e, s in stats.items()})
    sample = ds[0]   # {"image", "lang", "state", "action", "action_mask", "task_index", ...}
"""

from AlphaBrain.dataloader.lerobot_dataset import LeRobotSingleDataset
from AlphaBrain.dataloader.lerobot_writer import LeRobotDatasetWriter
from AlphaBrain.dataloader.mixture_dataset import LeRobotMixtureDataset
from AlphaBrain.dataloader.mixtures import DATASET_NAMED_MIXTURES, MixtureEntry, load_mixture, resolve_mixture
from AlphaBrain.dataloader.spec import DataSpec
from AlphaBrain.dataloader.statistics import (
    Normalizer,
    compute_dataset_statistics,
    load_dataset_statistics,
    save_dataset_statistics,
)

__all__ = [
    "DATASET_NAMED_MIXTURES",
    "DataSpec",
    "LeRobotDatasetWriter",
    "LeRobotMixtureDataset",
    "LeRobotSingleDataset",
    "MixtureEntry",
    "Normalizer",
    "compute_dataset_statistics",
    "load_dataset_statistics",
    "load_mixture",
    "resolve_mixture",
    "save_dataset_statistics",
]

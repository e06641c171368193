"""Named dataset mixtures: a name in the YAML (`datasets.vla_data.data_mix`) -> LeRobot directories.

A mixture is a list of (directory relative to `data_root_dir`, sampling weight,
embodiment tag). `data_mix` may also be a directory path: one LeRobot dataset,
or a folder whose immediate subdirectories are LeRobot datasets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from AlphaBrain.dataloader.lerobot_dataset import LeRobotSingleDataset
from AlphaBrain.dataloader.lerobot_format import INFO_PATH
from AlphaBrain.dataloader.mixture_dataset import LeRobotMixtureDataset
from AlphaBrain.utils.errors import ConfigError, DatasetError, UserError, unknown_name

LIBERO_EMBODIMENT = "libero_franka"

# The common LeRobot conversions of the LIBERO suites (no-op actions removed).
_LIBERO_DIRS = {
    "libero_goal": "libero_goal_no_noops_1.0.0_lerobot",
    "libero_spatial": "libero_spatial_no_noops_1.0.0_lerobot",
    "libero_object": "libero_object_no_noops_1.0.0_lerobot",
    "libero_10": "libero_10_no_noops_1.0.0_lerobot",
}

DATASET_NAMED_MIXTURES: dict[str, list[tuple[str, float, str]]] = {
    **{name: [(d, 1.0, LIBERO_EMBODIMENT)] for name, d in _LIBERO_DIRS.items()},
    "libero_long": [(_LIBERO_DIRS["libero_10"], 1.0, LIBERO_EMBODIMENT)],  # LIBERO-10 is LIBERO-Long
    "libero_all": [(d, 1.0, LIBERO_EMBODIMENT) for d in _LIBERO_DIRS.values()],
}

#: The features (and shapes) of the common LeRobot conversions of LIBERO: the LIBERO suites and the
#: LIBERO evaluation expect exactly these (agent-view + wrist camera, 8-D state, 7-D action).
LIBERO_FEATURES: dict[str, tuple[int, ...] | None] = {
    "observation.images.image": None,  # HxWx3, any size
    "observation.images.wrist_image": None,
    "observation.state": (8,),
    "action": (7,),
}
#: LeRobot's own bookkeeping columns, present in every dataset.
_LEROBOT_INDEX_KEYS = {"timestamp", "frame_index", "episode_index", "index", "task_index"}

_DATA_ROOT_HELP = (
    "set LEROBOT_LIBERO_DATA_DIR (in .env, see .env.example) or datasets.vla_data.data_root_dir "
    "to the folder that holds the LeRobot datasets"
)


@dataclass(frozen=True)
class MixtureEntry:
    path: Path
    weight: float
    embodiment: str | None


def is_lerobot_dataset(path: Path) -> bool:
    return (path / INFO_PATH).is_file()


def _parse_extra(name: str, items: Any) -> list[tuple[str, float, str | None]]:
    """User mixtures from YAML: a list of {path, weight, embodiment} (or [path, weight, embodiment])."""
    if isinstance(items, (str, bytes, Mapping)) or not hasattr(items, "__iter__"):
        raise ConfigError(f"named mixture {name!r} must be a list of {{path, weight, embodiment}} entries")
    out = []
    for item in items:
        if isinstance(item, Mapping) or hasattr(item, "keys"):
            if "path" not in item:
                raise ConfigError(f"an entry of named mixture {name!r} has no 'path': {dict(item)}")
            path, weight, emb = item["path"], item.get("weight", 1.0), item.get("embodiment")
        else:
            seq = list(item)
            if not 1 <= len(seq) <= 3:
                raise ConfigError(f"an entry of named mixture {name!r} must be [path, weight, embodiment], got {seq}")
            path, weight, emb = seq + [None, 1.0, None][len(seq) :]
        try:
            weight = float(weight)
        except (TypeError, ValueError):
            raise ConfigError(f"named mixture {name!r}: weight {weight!r} of {path} is not a number") from None
        out.append((str(path), weight, None if emb is None else str(emb)))
    if not out:
        raise ConfigError(f"named mixture {name!r} is empty")
    return out


def _from_directory(path: Path) -> list[MixtureEntry]:
    if is_lerobot_dataset(path):
        return [MixtureEntry(path, 1.0, None)]
    subs = sorted(p for p in path.iterdir() if p.is_dir() and is_lerobot_dataset(p))
    if not subs:
        raise DatasetError(
            f"{path} is not a LeRobot dataset: expected meta/info.json in it or in its immediate subdirectories"
        )
    return [MixtureEntry(p, 1.0, None) for p in subs]


def resolve_mixture(
    name_or_path: str | Path, data_root_dir: str | Path | None, extra: Mapping[str, Any] | None = None
) -> list[MixtureEntry]:
    """Turn a mixture name (registered, or from `extra`) or a directory into dataset entries."""
    name = str(name_or_path)
    extra = dict(extra or {})
    if name in extra or name in DATASET_NAMED_MIXTURES:
        raw = _parse_extra(name, extra[name]) if name in extra else DATASET_NAMED_MIXTURES[name]
        entries = []
        for rel, weight, emb in raw:
            p = Path(rel).expanduser()
            if not p.is_absolute():
                if data_root_dir is None or str(data_root_dir).strip() == "":
                    raise ConfigError(f"dataset mixture {name!r} needs a data root directory: {_DATA_ROOT_HELP}")
                p = Path(data_root_dir).expanduser() / p
            if not p.is_dir():
                raise DatasetError(
                    f"dataset mixture {name!r} expects a LeRobot dataset at {p}, which does not exist: "
                    f"download/convert it there or {_DATA_ROOT_HELP}"
                )
            entries.append(MixtureEntry(p, weight, emb))
        return entries

    candidates = [Path(name).expanduser()]
    if data_root_dir:
        candidates.append(Path(data_root_dir).expanduser() / name)
    for candidate in candidates:
        if candidate.is_dir():
            return _from_directory(candidate)
    valid = sorted({*DATASET_NAMED_MIXTURES, *extra})
    if "/" in name or name.startswith((".", "~")):  # meant as a path, not a name
        raise DatasetError(
            f"dataset directory {name} does not exist (nor is it a named mixture: {', '.join(valid)})"
        )
    err = unknown_name("dataset mixture", name, valid)
    raise UserError(f"{err} Or give the path of a LeRobot dataset directory.")


def load_mixture(
    name_or_path: str | Path,
    data_root_dir: str | Path | None,
    action_horizon: int,
    image_keys: list[str] | None = None,
    extra: Mapping[str, Any] | None = None,
    **dataset_kwargs: Any,
) -> LeRobotMixtureDataset:
    """Resolve a mixture and open every dataset in it (dataset_index = position in the mixture)."""
    entries = resolve_mixture(name_or_path, data_root_dir, extra)
    for e in entries:
        if e.embodiment == LIBERO_EMBODIMENT:
            check_libero_features(e.path)
    datasets = [
        LeRobotSingleDataset(
            e.path,
            action_horizon=action_horizon,
            embodiment=e.embodiment,
            image_keys=image_keys,
            dataset_index=k,
            **dataset_kwargs,
        )
        for k, e in enumerate(entries)
    ]
    return LeRobotMixtureDataset(datasets, [e.weight for e in entries])


def check_libero_features(path: Path) -> None:
    """DatasetError naming the missing / extra / mis-shaped features when `path` is not a LIBERO conversion."""
    from AlphaBrain.dataloader.lerobot_format import load_meta

    features = load_meta(path).features
    missing = [k for k in LIBERO_FEATURES if k not in features]
    extra = sorted(k for k in features if k not in LIBERO_FEATURES and k not in _LEROBOT_INDEX_KEYS)
    shapes = [
        f"{k} has shape {list(features[k].get('shape', []))}, expected {list(shape)}"
        for k, shape in LIBERO_FEATURES.items()
        if shape is not None and k in features and tuple(features[k].get("shape", ())) != shape
    ]
    if missing or extra or shapes:
        problems = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"extra {', '.join(extra)}"] if extra else []) + shapes
        raise DatasetError(
            f"{path} does not have the features of a LeRobot LIBERO conversion: {'; '.join(problems)}. Expected "
            f"{', '.join(LIBERO_FEATURES)} (+ LeRobot's index columns). Use the common conversions "
            f"(e.g. {_LIBERO_DIRS['libero_goal']}), or give the dataset as a path with --dataset to train on it as is."
        )

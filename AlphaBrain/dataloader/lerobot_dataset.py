"""A LeRobot dataset (v2.x or v3.0) as a torch Dataset of training samples.

The numeric columns (state, action, indices) are read once into numpy arrays,
ordered by (episode_index, frame_index), so every episode is a contiguous slice
of global frame indices: sample i is frame i, action chunks are slices, and a
task filter is a list of indices (nothing is copied). Camera frames are read on
access (see frame_source.py).

Sample (docs/data/lerobot.md, "The training sample"):
    image          list of HxWx3 uint8 arrays, one per camera, `image_keys` order
    lang           the task instruction (str)
    state          float32[state_dim], normalized when a normalizer is set
    action         float32[action_horizon, action_dim], the chunk starting at this
                   frame; past the episode end the last action is repeated ...
    action_mask    bool[action_horizon], ... and marked False
    task_index, episode_index, frame_index, dataset_index   int
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np
from torch.utils.data import Dataset

from AlphaBrain.dataloader.frame_source import EpisodeFrameSource
from AlphaBrain.dataloader.indexing import Ref, check_index
from AlphaBrain.dataloader.lerobot_format import CAMERA_DTYPES, image_hw, load_meta
from AlphaBrain.dataloader.parquet_io import column_to_numpy, parquet_column_names, read_parquet
from AlphaBrain.dataloader.spec import DataSpec
from AlphaBrain.utils.errors import DatasetError

if TYPE_CHECKING:
    from AlphaBrain.dataloader.statistics import Normalizer

@dataclass(frozen=True)
class EpisodeInfo:
    episode_index: int
    length: int
    task_index: int  # the task of its frames (see episode_task_map for mixed episodes)
    start: int  # global index of its first frame in this dataset


def check_action_horizon(action_horizon: Any) -> int:
    if isinstance(action_horizon, bool) or not isinstance(action_horizon, (int, np.integer)) or action_horizon < 1:
        raise DatasetError(
            f"action_horizon must be an integer >= 1, got {action_horizon!r} "
            "(framework.action_model.action_horizon)"
        )
    return int(action_horizon)


class LeRobotSingleDataset(Dataset):
    def __init__(
        self,
        root: str | Path,
        *,
        action_horizon: int,
        embodiment: str | None = None,
        image_keys: list[str] | None = None,
        state_key: str = "observation.state",
        action_key: str = "action",
        dataset_index: int = 0,
        video_cache_episodes: int = 4,
    ) -> None:
        self.action_horizon = check_action_horizon(action_horizon)
        self.root = Path(root)
        meta = load_meta(self.root)
        self._meta = meta
        self.version, self.info, self.fps = meta.version, meta.info, meta.fps
        self.embodiment = embodiment or meta.info.get("robot_type") or "default"
        self.state_key, self.action_key = state_key, action_key
        self.dataset_index = int(dataset_index)
        self.tasks: dict[int, str] = dict(meta.tasks)
        features = meta.features
        for role, key in (("state", state_key), ("action", action_key)):
            if key not in features:
                raise DatasetError(
                    f"{self.root}: {role} key {key!r} is not a feature of this dataset; available feature keys: "
                    f"{', '.join(features)} (set {role}_key)"
                )
        if image_keys is None:
            image_keys = meta.camera_keys
        for key in image_keys:
            if features.get(key, {}).get("dtype") not in CAMERA_DTYPES:
                cams = meta.camera_keys
                raise DatasetError(
                    f"{self.root}: image key {key!r} is not a camera feature of this dataset; camera keys: "
                    f"{', '.join(cams) or '(none)'}; all feature keys: {', '.join(features)}"
                )
        self.image_keys: list[str] = list(image_keys)
        self.image_size: tuple[int, int] | None = image_hw(features[self.image_keys[0]]) if self.image_keys else None
        self._load_columns()
        self._normalizer: Normalizer | None = None
        self._frames = EpisodeFrameSource(
            self.root, self.image_keys, {k: features[k]["dtype"] for k in self.image_keys}, self.fps or 1.0,
            rows_of=self._rows_of,
            segment_of=self._segment_of,
            length_of=self._length_of,
            video_cache_episodes=video_cache_episodes,
        )

    # ------------------------------------------------------------------ loading

    def _load_columns(self) -> None:
        meta, files = self._meta, self._meta.data_files()
        part_names = ("state", "action", "episode", "frame", "task", "file", "row")
        parts: dict[str, list[np.ndarray]] = {k: [] for k in part_names}
        for file_id, path in enumerate(files):
            names = parquet_column_names(path)
            for key in (self.state_key, self.action_key, "episode_index"):
                if key not in names:
                    raise DatasetError(f"{path} has no column {key!r}; its columns: {', '.join(names)}")
            optional = [c for c in ("frame_index", "task_index") if c in names]
            table = read_parquet(path, [self.state_key, self.action_key, "episode_index", *optional])
            n = table.num_rows
            get = lambda key, table=table, path=path: column_to_numpy(table.column(key), key, path)  # noqa: E731
            parts["state"].append(get(self.state_key).astype(np.float32, copy=False).reshape(n, -1))
            parts["action"].append(get(self.action_key).astype(np.float32, copy=False).reshape(n, -1))
            parts["episode"].append(get("episode_index").astype(np.int64).reshape(n))
            parts["frame"].append(get("frame_index").astype(np.int64).reshape(n) if "frame_index" in optional
                                  else np.arange(n, dtype=np.int64))
            parts["task"].append(get("task_index").astype(np.int64).reshape(n) if "task_index" in optional
                                 else np.full(n, -1, dtype=np.int64))
            parts["file"].append(np.full(n, file_id, dtype=np.int32))
            parts["row"].append(np.arange(n, dtype=np.int64))
        try:
            cat = {k: np.concatenate(v) for k, v in parts.items()}
        except ValueError as e:  # feature widths differ between files
            raise DatasetError(f"{self.root}: data files disagree on column shapes: {e}") from None
        order = np.lexsort((cat["frame"], cat["episode"]))
        cat = {k: v[order] for k, v in cat.items()}
        ep_ids, starts, counts = np.unique(cat["episode"], return_index=True, return_counts=True)

        by_index = {e.episode_index: e for e in meta.episodes}
        extra = sorted(set(ep_ids.tolist()) - set(by_index))
        if extra:
            raise DatasetError(
                f"{self.root}: data has frames of episode(s) {extra[:5]} that the metadata does not list"
            )
        found = dict(zip(ep_ids.tolist(), counts.tolist()))
        for ep in meta.episodes:
            if ep.episode_index not in found:
                raise DatasetError(
                    f"{self.root}: episode {ep.episode_index} is in the metadata but has no frames in {ep.data_path}"
                )
            if found[ep.episode_index] != ep.length:
                raise DatasetError(
                    f"{self.root}: episode {ep.episode_index} has {found[ep.episode_index]} frames in "
                    f"{ep.data_path} but the metadata says {ep.length}"
                )
        # Frames without a task_index column get their episode's (first) task.
        if (cat["task"] < 0).any():
            text_to_index = {t: i for i, t in self.tasks.items()}
            for e, s, c in zip(ep_ids, starts, counts):
                tasks = by_index[int(e)].tasks
                cat["task"][s : s + c] = text_to_index.get(tasks[0], -1) if tasks else -1
        unknown = sorted(set(np.unique(cat["task"]).tolist()) - set(self.tasks))
        if unknown:
            raise DatasetError(f"{self.root}: frames use task_index {unknown[:5]} that the task list does not define")

        # load_meta sorted the metadata by episode_index, the same order as ep_ids.
        self._state, self._action, self._task = cat["state"], cat["action"], cat["task"]
        self._file_id, self._row, self._files = cat["file"], cat["row"], files
        first_task = cat["task"][starts]
        self._mixed = np.minimum.reduceat(cat["task"], starts) != np.maximum.reduceat(cat["task"], starts)
        self.episodes = [
            EpisodeInfo(int(e), int(c), int(t), int(s)) for e, c, t, s in zip(ep_ids, counts, first_task, starts)
        ]
        self._ep_pos = np.repeat(np.arange(len(self.episodes), dtype=np.int64), counts)
        self._ep_lookup = {ep.episode_index: pos for pos, ep in enumerate(self.episodes)}
        self.state_dim, self.action_dim = int(self._state.shape[1]), int(self._action.shape[1])

    def _rows_of(self, pos: int) -> tuple[Path, np.ndarray]:
        ep = self.episodes[pos]
        sl = slice(ep.start, ep.start + ep.length)
        return self._files[int(self._file_id[ep.start])], self._row[sl]

    def _segment_of(self, pos: int, key: str):
        return self._meta.episodes[pos].videos[key]

    def _length_of(self, pos: int) -> int:
        return self.episodes[pos].length

    # ------------------------------------------------------------------ API

    def __len__(self) -> int:
        return len(self._state)

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    def spec(self, action_horizon: int | None = None) -> DataSpec:
        if not self.image_keys:
            raise DatasetError(f"{self.root}: no camera features selected; a policy needs at least one image key")
        return DataSpec(
            state_dim=self.state_dim,
            action_dim=self.action_dim,
            action_horizon=check_action_horizon(action_horizon or self.action_horizon),
            num_cameras=len(self.image_keys),
            image_size=self.image_size,
        )

    @property
    def data_spec(self) -> DataSpec:
        return self.spec()

    def set_normalizer(self, normalizer: "Normalizer | None") -> None:
        self._normalizer = normalizer

    @property
    def normalizer(self) -> "Normalizer | None":
        return self._normalizer

    def ref(self, i: int) -> Ref:
        i = self._check_index(i)
        ep = self.episodes[int(self._ep_pos[i])]
        return (self.dataset_index, ep.episode_index, i - ep.start)

    def global_index(self, episode_index: int, frame_index: int) -> int:
        pos = self._ep_lookup.get(int(episode_index))
        if pos is None:
            raise DatasetError(f"{self.root}: no episode {episode_index} (it has {len(self.episodes)} episodes)")
        ep = self.episodes[pos]
        if not 0 <= int(frame_index) < ep.length:
            raise IndexError(f"frame {frame_index} out of range for episode {episode_index} of length {ep.length}")
        return ep.start + int(frame_index)

    def get(self, episode_index: int, frame_index: int) -> dict[str, Any]:
        return self._sample(self.global_index(episode_index, frame_index))

    def get_ref(self, ref: Ref) -> dict[str, Any]:
        dataset_index, episode_index, frame_index = ref
        if int(dataset_index) != self.dataset_index:
            raise DatasetError(f"ref {tuple(ref)} is for dataset {dataset_index}, this is dataset {self.dataset_index}")
        return self.get(episode_index, frame_index)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self._sample(self._check_index(i))

    def _check_index(self, i: int) -> int:
        return check_index(i, len(self), "dataset")

    def _sample(self, i: int) -> dict[str, Any]:
        pos = int(self._ep_pos[i])
        ep = self.episodes[pos]
        frame = i - ep.start
        steps = np.arange(self.action_horizon)
        last = ep.start + ep.length - 1
        action = self._action[np.minimum(i + steps, last)]  # fancy indexing copies
        state = self._state[i].copy()
        if self._normalizer is not None:
            state = self._normalizer.normalize_state(state)
            action = self._normalizer.normalize_action(action)
        task = int(self._task[i])
        return {
            "image": self._frames.frames(pos, frame),
            "lang": self.tasks[task],
            "state": np.asarray(state, dtype=np.float32),
            "action": np.asarray(action, dtype=np.float32),
            "action_mask": frame + steps < ep.length,
            "task_index": task,
            "episode_index": ep.episode_index,
            "frame_index": frame,
            "dataset_index": self.dataset_index,
        }

    def episode_task_map(self) -> dict[int, list[int]]:
        """task_index -> episode indices (each episode's task is the task_index of its frames)."""
        if self._mixed.any():
            bad = [self.episodes[p].episode_index for p in np.flatnonzero(self._mixed)[:5]]
            raise DatasetError(
                f"{self.root}: episode(s) {bad} mix several task_index values; a task stream needs one task per "
                "episode (split those episodes, or use task_stream_mode: by_dataset)"
            )
        out: dict[int, list[int]] = {}
        for ep in self.episodes:
            out.setdefault(ep.task_index, []).append(ep.episode_index)
        return dict(sorted(out.items()))

    def indices_for_episodes(self, episode_ids: Iterable[int]) -> np.ndarray:
        """Global frame indices of the given episodes (in the given order), int64."""
        ranges = []
        for e in episode_ids:
            pos = self._ep_lookup.get(int(e))
            if pos is None:
                known = f"{self.episodes[0].episode_index}..{self.episodes[-1].episode_index}"
                raise DatasetError(f"{self.root}: no episode {e} (episode indices {known})")
            ep = self.episodes[pos]
            ranges.append(np.arange(ep.start, ep.start + ep.length, dtype=np.int64))
        return np.concatenate(ranges) if ranges else np.zeros(0, dtype=np.int64)

    def raw_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(state float32[N, S], action float32[N, A]), unnormalized, for statistics. Do not modify."""
        return self._state, self._action

    def __repr__(self) -> str:
        return (
            f"LeRobotSingleDataset({str(self.root)!r}, version={self.version}, embodiment={self.embodiment!r}, "
            f"episodes={len(self.episodes)}, frames={len(self)}, tasks={len(self.tasks)}, "
            f"state_dim={self.state_dim}, action_dim={self.action_dim}, cameras={self.image_keys})"
        )


__all__ = ["EpisodeInfo", "LeRobotSingleDataset", "Ref", "check_action_horizon"]

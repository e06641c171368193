"""Write episodes as a LeRobot dataset (v3.0 or v2.1), atomically.

Used for simulator demonstrations and for the synthetic test/smoke datasets.
Everything is written into a hidden temporary directory next to `root` and
renamed into place by `finalize()`: a crash or an exception leaves nothing at
`root` that looks like a dataset.

    with LeRobotDatasetWriter(root, fps=10, robot_type="franka", state_dim=8, action_dim=7,
                              cameras={"image": (128, 128)}) as writer:
        writer.add_episode({"image": frames}, state, action, "open the drawer")
    # finalized on a clean exit, discarded on an exception
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from AlphaBrain.dataloader.episode_stats import ImageStats, numeric_stats
from AlphaBrain.dataloader.lerobot_format import (
    DEFAULT_CHUNKS_SIZE,
    INFO_PATH,
    V2_DATA_PATH,
    V2_VIDEO_PATH,
    V3_DATA_PATH,
    V3_EPISODES_PATH,
    V3_TASKS_PATH,
    V3_VIDEO_PATH,
    WRITABLE_VERSIONS,
)
from AlphaBrain.dataloader.lerobot_schema import (
    ACTION_KEY,
    INDEX_FEATURES,
    STATE_KEY,
    arrow_schema,
    build_features,
    camera_key,
    episode_table,
)
from AlphaBrain.dataloader.parquet_io import pandas_index_metadata
from AlphaBrain.dataloader.video import VideoEncoder
from AlphaBrain.utils.atomic_io import atomic_dir
from AlphaBrain.utils.errors import DatasetError


class LeRobotDatasetWriter:
    def __init__(
        self,
        root: str | Path,
        *,
        fps: int,
        robot_type: str,
        state_dim: int,
        action_dim: int,
        cameras: dict[str, tuple[int, int]],
        version: str = "v3.0",
        image_storage: str = "image",
        overwrite: bool = False,
        state_names: list[str] | None = None,
        action_names: list[str] | None = None,
        chunks_size: int = DEFAULT_CHUNKS_SIZE,
        data_files_size_in_mb: float = 100,
        video_files_size_in_mb: float = 200,
    ) -> None:
        if version not in WRITABLE_VERSIONS:
            raise ValueError(f"version must be one of {', '.join(WRITABLE_VERSIONS)}, got {version!r}")
        if image_storage not in ("image", "video"):
            raise ValueError(f"image_storage must be 'image' or 'video', got {image_storage!r}")
        if int(fps) < 1 or int(state_dim) < 0 or int(action_dim) < 1:
            raise ValueError(f"need fps >= 1, state_dim >= 0, action_dim >= 1; got {fps}, {state_dim}, {action_dim}")
        for cam, hw in cameras.items():
            if len(hw) != 2 or min(hw) < 1:
                raise ValueError(f"camera {cam!r}: size must be (height, width), got {hw!r}")
            if image_storage == "video" and (hw[0] % 2 or hw[1] % 2):
                raise ValueError(
                    f"camera {cam!r}: video storage needs an even height and width (yuv420p), got {hw}; "
                    "use image_storage='image' or an even size"
                )
        self.root = Path(root)
        if self.root.exists() and not overwrite:
            raise DatasetError(f"{self.root} already exists; pass overwrite=True or choose another directory")
        self.fps, self.robot_type, self.version = int(fps), str(robot_type), version
        self.state_dim, self.action_dim = int(state_dim), int(action_dim)
        self.cameras = {c: (int(h), int(w)) for c, (h, w) in cameras.items()}
        self.image_storage = image_storage
        self.chunks_size = int(chunks_size)
        # v3.0 starts a new data/video file once the current one passes this size.
        self.data_mb, self.video_mb = data_files_size_in_mb, video_files_size_in_mb
        self.features = build_features(
            version=version, fps=self.fps, cameras=self.cameras, image_storage=image_storage,
            state_dim=self.state_dim, action_dim=self.action_dim, state_names=state_names, action_names=action_names,
        )
        self._arrow_schema = arrow_schema(self.features)
        # Extra top-level info.json keys (e.g. how a simulator generated the data);
        # LeRobot ignores keys it does not know.
        self.extra_info: dict[str, Any] = {}

        self._tasks: dict[str, int] = {}
        self._episodes: list[dict[str, Any]] = []
        self._episode_stats: list[dict[str, Any]] = []
        self._numeric: dict[str, list[np.ndarray]] = {k: [] for k in (STATE_KEY, ACTION_KEY, *INDEX_FEATURES)}
        self._image_stats = {c: ImageStats() for c in self.cameras}
        self._total_frames = 0
        self._finished = False
        # v3.0 appends episodes to open files and rolls over to a new file past the size limit.
        self._data_file: tuple[int, int] = (0, 0)
        self._data_writer: pq.ParquetWriter | None = None
        self._data_bytes = 0
        self._videos: dict[str, tuple[tuple[int, int], VideoEncoder]] = {}

        self._ctx = atomic_dir(self.root)
        self._tmp = self._ctx.__enter__()

    # ------------------------------------------------------------------ episodes

    def add_episode(
        self, images: dict[str, np.ndarray], state: np.ndarray, action: np.ndarray, task: str
    ) -> int:
        """Append one episode; returns its episode_index."""
        if self._finished:
            raise RuntimeError("add_episode() after finalize() or abort()")
        state = np.asarray(state, dtype=np.float32)
        action = np.asarray(action, dtype=np.float32)
        t = len(action)
        if t < 1:
            raise ValueError("an episode needs at least one frame")
        if state.shape != (t, self.state_dim) or action.shape != (t, self.action_dim):
            raise ValueError(
                f"expected state [{t}, {self.state_dim}] and action [{t}, {self.action_dim}], "
                f"got {list(state.shape)} and {list(action.shape)}"
            )
        if set(images) != set(self.cameras):
            raise ValueError(f"images for cameras {sorted(images)}, expected {sorted(self.cameras)}")
        for cam, (h, w) in self.cameras.items():
            arr = images[cam]
            if arr.dtype != np.uint8 or arr.shape != (t, h, w, 3):
                raise ValueError(
                    f"camera {cam!r}: expected uint8 [{t}, {h}, {w}, 3], got {arr.dtype} {list(arr.shape)}"
                )
        if not isinstance(task, str) or not task.strip():
            raise ValueError("task must be a non-empty instruction string")

        ep = len(self._episodes)
        task_index = self._tasks.setdefault(task, len(self._tasks))
        frame_index = np.arange(t, dtype=np.int64)
        columns: dict[str, Any] = {
            STATE_KEY: state, ACTION_KEY: action,
            "timestamp": (frame_index / self.fps).astype(np.float32),
            "frame_index": frame_index,
            "episode_index": np.full(t, ep, dtype=np.int64),
            "index": self._total_frames + frame_index,
            "task_index": np.full(t, task_index, dtype=np.int64),
        }
        stats = {key: numeric_stats(columns[key]) for key in self._numeric}
        for key in self._numeric:
            self._numeric[key].append(columns[key])
        for cam in self.cameras:
            stats[camera_key(cam)] = self._image_stats[cam].add_episode(images[cam])
        record: dict[str, Any] = {"episode_index": ep, "tasks": [task], "length": t}
        try:
            record.update(self._write_frames(ep, t, columns, images))
        except BaseException:
            self.abort()  # a half-written episode would leave the files inconsistent
            raise
        self._episodes.append(record)
        self._episode_stats.append(stats)
        self._total_frames += t
        return ep

    def _write_frames(self, ep: int, t: int, columns, images) -> dict[str, Any]:
        table = episode_table(self._arrow_schema, columns, images)
        if self.version == "v2.1":
            chunk = ep // self.chunks_size
            path = self._tmp / V2_DATA_PATH.format(episode_chunk=chunk, episode_index=ep)
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, path)
            if self.image_storage == "video":
                for cam in self.cameras:
                    key = camera_key(cam)
                    vpath = self._tmp / V2_VIDEO_PATH.format(episode_chunk=chunk, video_key=key, episode_index=ep)
                    enc = VideoEncoder(vpath, fps=self.fps, height=self.cameras[cam][0], width=self.cameras[cam][1])
                    enc.write(images[cam])
                    enc.close()
            return {}

        # v3.0: whole episodes are appended to the current file, one row group each
        # (so a reader can fetch one episode's images without reading the file).
        if self._data_writer is not None and self._data_bytes >= self.data_mb * 1024 * 1024:
            self._data_writer.close()
            self._data_writer, self._data_file = None, self._next_file(self._data_file)
        if self._data_writer is None:
            chunk, file = self._data_file
            path = self._tmp / V3_DATA_PATH.format(chunk_index=chunk, file_index=file)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._data_writer, self._data_bytes = pq.ParquetWriter(path, table.schema), 0
        self._data_writer.write_table(table, row_group_size=max(t, 1))
        self._data_bytes += table.nbytes
        record: dict[str, Any] = {
            "data/chunk_index": self._data_file[0],
            "data/file_index": self._data_file[1],
            "dataset_from_index": self._total_frames,
            "dataset_to_index": self._total_frames + t,
        }
        if self.image_storage == "video":
            for cam in self.cameras:
                record.update(self._append_video(cam, images[cam]))
        return record

    def _next_file(self, index: tuple[int, int]) -> tuple[int, int]:
        chunk, file = index[0], index[1] + 1
        return (chunk + 1, 0) if file >= self.chunks_size else (chunk, file)

    def _append_video(self, cam: str, frames: np.ndarray) -> dict[str, Any]:
        key = camera_key(cam)
        index, enc = self._videos.get(key, ((0, 0), None))
        if enc is not None and enc.bytes_written >= self.video_mb * 1024 * 1024:
            enc.close()
            index, enc = self._next_file(index), None
        if enc is None:
            path = self._tmp / V3_VIDEO_PATH.format(video_key=key, chunk_index=index[0], file_index=index[1])
            enc = VideoEncoder(path, fps=self.fps, height=self.cameras[cam][0], width=self.cameras[cam][1])
            self._videos[key] = (index, enc)
        start = enc.frames_written / self.fps
        enc.write(frames)
        return {
            f"videos/{key}/chunk_index": index[0],
            f"videos/{key}/file_index": index[1],
            f"videos/{key}/from_timestamp": start,
            f"videos/{key}/to_timestamp": start + len(frames) / self.fps,
        }

    # ------------------------------------------------------------------ finish

    def _close_files(self) -> None:
        if self._data_writer is not None:
            self._data_writer.close()
            self._data_writer = None
        for _, enc in self._videos.values():
            enc.close()
        self._videos.clear()

    def finalize(self) -> Path:
        """Write the metadata and move the dataset into place; returns `root`."""
        if self._finished:
            raise RuntimeError("finalize() called twice or after abort()")
        if not self._episodes:
            self.abort()
            raise ValueError("no episodes were added; nothing to write")
        try:
            self._close_files()
            self._write_meta()
        except BaseException as e:
            self._finished = True
            self._ctx.__exit__(type(e), e, e.__traceback__)
            raise
        self._finished = True
        self._ctx.__exit__(None, None, None)
        return self.root

    def abort(self) -> None:
        """Discard everything written so far."""
        if self._finished:
            return
        self._finished = True
        try:
            self._close_files()
        except Exception:  # noqa: BLE001 - the files are being thrown away anyway
            pass
        err = RuntimeError("dataset writing aborted")
        self._ctx.__exit__(RuntimeError, err, None)

    def __enter__(self) -> "LeRobotDatasetWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._finished:
            self.finalize()

    def _write_meta(self) -> None:
        meta = self._tmp / "meta"
        meta.mkdir(parents=True, exist_ok=True)
        n_eps, has_video = len(self._episodes), self.image_storage == "video"
        info: dict[str, Any] = {
            "codebase_version": self.version,
            "robot_type": self.robot_type,
            "total_episodes": n_eps,
            "total_frames": self._total_frames,
            "total_tasks": len(self._tasks),
        }
        if self.version == "v2.1":
            info["total_videos"] = n_eps * len(self.cameras) if has_video else 0
            info["total_chunks"] = (n_eps + self.chunks_size - 1) // self.chunks_size
            info.update(chunks_size=self.chunks_size, fps=self.fps, splits={"train": f"0:{n_eps}"},
                        data_path=V2_DATA_PATH, video_path=V2_VIDEO_PATH if has_video else None)
        else:
            info.update(chunks_size=self.chunks_size, data_files_size_in_mb=self.data_mb,
                        video_files_size_in_mb=self.video_mb, fps=self.fps, splits={"train": f"0:{n_eps}"},
                        data_path=V3_DATA_PATH, video_path=V3_VIDEO_PATH if has_video else None)
        info["features"] = self.features
        info.update({k: v for k, v in self.extra_info.items() if k not in info})
        (self._tmp / INFO_PATH).write_text(json.dumps(info, indent=4) + "\n")
        tasks = sorted(self._tasks.items(), key=lambda kv: kv[1])
        if self.version == "v2.1":
            self._write_jsonl(meta / "tasks.jsonl", [{"task_index": i, "task": t} for t, i in tasks])
            self._write_jsonl(meta / "episodes.jsonl", self._episodes)
            self._write_jsonl(meta / "episodes_stats.jsonl", [
                {"episode_index": i, "stats": s} for i, s in enumerate(self._episode_stats)
            ])
            return
        task_table = pa.table(
            {"task_index": pa.array([i for _, i in tasks], pa.int64()), "task": pa.array([t for t, _ in tasks])}
        ).replace_schema_metadata(
            pandas_index_metadata("task", [("task_index", "int64", "int64"), ("task", "unicode", "object")])
        )
        pq.write_table(task_table, self._tmp / V3_TASKS_PATH)
        rows = []
        for record, stats in zip(self._episodes, self._episode_stats):
            row = dict(record)
            for feat, values in stats.items():
                for name, value in values.items():
                    row[f"stats/{feat}/{name}"] = value
            row["meta/episodes/chunk_index"] = 0
            row["meta/episodes/file_index"] = 0
            rows.append(row)
        ep_path = self._tmp / V3_EPISODES_PATH.format(chunk_index=0, file_index=0)
        ep_path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), ep_path)
        stats = {key: numeric_stats(np.concatenate(v), quantiles=True) for key, v in self._numeric.items()}
        stats.update({camera_key(c): s.total() for c, s in self._image_stats.items()})
        (meta / "stats.json").write_text(json.dumps(stats, indent=4) + "\n")

    @staticmethod
    def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))

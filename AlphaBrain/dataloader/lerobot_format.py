"""The LeRobot on-disk layouts (v2.0/v2.1 and v3.0): path templates and metadata parsing.

Both layouts describe the same thing -- episodes of frames, each frame tagged with
a task -- but store the per-episode records differently:

* v2.x: one parquet per episode (`data/chunk-XXX/episode_XXXXXX.parquet`),
  `meta/episodes.jsonl`, `meta/tasks.jsonl`, one mp4 per episode and camera.
* v3.0: many episodes concatenated per parquet (`data/chunk-XXX/file-XXX.parquet`),
  `meta/episodes/chunk-XXX/file-XXX.parquet` (with row offsets and video time
  ranges), `meta/tasks.parquet`, episodes concatenated per mp4.

This module turns either into one `DatasetMeta`, so the reader never branches on
the version again. It reads metadata only; frame data is read by the dataset.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from AlphaBrain.dataloader.parquet_io import parquet_column_names, read_parquet
from AlphaBrain.utils.errors import DatasetError

INFO_PATH = "meta/info.json"
# v2.0 and v2.1 share the data layout (v2.1 only moved statistics into
# episodes_stats.jsonl), and many public LIBERO conversions are still v2.0.
SUPPORTED_VERSIONS = ("v2.0", "v2.1", "v3.0")
WRITABLE_VERSIONS = ("v2.1", "v3.0")

V2_DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
V2_VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
V3_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
V3_VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
V3_EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
V3_TASKS_PATH = "meta/tasks.parquet"
DEFAULT_CHUNKS_SIZE = 1000

CAMERA_DTYPES = ("image", "video")


@dataclass(frozen=True)
class VideoSegment:
    """Where one episode's frames of one camera live: a file and a time range in it."""

    path: Path
    from_timestamp: float
    to_timestamp: float


@dataclass
class EpisodeMeta:
    episode_index: int
    length: int
    tasks: list[str]
    data_path: Path
    videos: dict[str, VideoSegment] = field(default_factory=dict)


@dataclass
class DatasetMeta:
    root: Path
    version: str
    info: dict[str, Any]
    tasks: dict[int, str]
    episodes: list[EpisodeMeta]

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        return self.info.get("features", {})

    @property
    def fps(self) -> float:
        return float(self.info.get("fps", 0) or 0)

    @property
    def camera_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f.get("dtype") in CAMERA_DTYPES]

    def data_files(self) -> list[Path]:
        """Distinct data files in episode order (v3 files hold many episodes)."""
        return list(dict.fromkeys(ep.data_path for ep in self.episodes))


def image_hw(feature: dict[str, Any]) -> tuple[int, int]:
    """(height, width) of an image/video feature, whatever axis order its shape uses."""
    shape = list(feature.get("shape") or [])
    names = feature.get("names")
    if isinstance(names, list) and len(names) == len(shape) == 3:
        lowered = [str(n).lower() for n in names]
        if "height" in lowered and "width" in lowered:
            return int(shape[lowered.index("height")]), int(shape[lowered.index("width")])
    if len(shape) == 3:
        # Channel-first shapes appear in a few old conversions: (3, H, W).
        if shape[0] in (1, 3) and shape[2] not in (1, 3):
            return int(shape[1]), int(shape[2])
        return int(shape[0]), int(shape[1])
    raise DatasetError(f"camera feature has an unexpected shape {shape}; expected [height, width, 3]")


def read_json_object(path: Path, name: str, fix: str = "", holds: str = "a JSON object") -> dict[str, Any]:
    """The JSON object in `path`; a DatasetError naming the file (`name`) and how to `fix` it otherwise."""
    suffix = f"; {fix}" if fix else ""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"{name} is not valid JSON ({e}){suffix}") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{name} must hold {holds}{suffix}")
    return data


def read_info(root: Path) -> dict[str, Any]:
    """Load and sanity-check meta/info.json, with errors that say how to fix the dataset path."""
    if not root.exists():
        raise DatasetError(
            f"dataset directory {root} does not exist: check the path "
            "(or datasets.vla_data.data_root_dir / LEROBOT_LIBERO_DATA_DIR)"
        )
    if not root.is_dir():
        raise DatasetError(f"dataset path {root} is a file, expected a LeRobot dataset directory")
    info_path = root / INFO_PATH
    if not info_path.is_file():
        raise DatasetError(
            f"{root} is not a LeRobot dataset: expected meta/info.json "
            "(point to the dataset folder that contains meta/, data/ and videos/)"
        )
    info = read_json_object(info_path, str(info_path))
    version = info.get("codebase_version")
    if version not in SUPPORTED_VERSIONS:
        raise DatasetError(
            f"{info_path} has codebase_version {version!r}; supported versions: "
            f"{', '.join(SUPPORTED_VERSIONS)} (convert the dataset with LeRobot's conversion scripts)"
        )
    if not isinstance(info.get("features"), dict) or not info["features"]:
        raise DatasetError(f"{info_path} has no 'features' mapping")
    return info


def load_meta(root: str | Path) -> DatasetMeta:
    root = Path(root)
    info = read_info(root)
    if info["codebase_version"] == "v3.0":
        tasks, episodes = _load_v3(root, info)
    else:
        tasks, episodes = _load_v2(root, info)
    if not episodes:
        raise DatasetError(f"{root} lists no episodes in its metadata")
    episodes.sort(key=lambda e: e.episode_index)
    return DatasetMeta(root=root, version=info["codebase_version"], info=info, tasks=tasks, episodes=episodes)


# ----------------------------------------------------------------------------- v2.x


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DatasetError(f"missing {path}: the LeRobot v2 metadata is incomplete")
    rows = []
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read {path}: {e}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise DatasetError(f"{path} line {number} is not valid JSON: {e}") from None
    return rows


def _load_v2(root: Path, info: dict[str, Any]) -> tuple[dict[int, str], list[EpisodeMeta]]:
    tasks = {int(r["task_index"]): str(r["task"]) for r in _read_jsonl(root / "meta/tasks.jsonl")}
    chunks_size = int(info.get("chunks_size") or DEFAULT_CHUNKS_SIZE)
    data_tpl = info.get("data_path") or V2_DATA_PATH
    video_tpl = info.get("video_path") or V2_VIDEO_PATH
    video_keys = [k for k, f in info["features"].items() if f.get("dtype") == "video"]
    episodes = []
    for row in _read_jsonl(root / "meta/episodes.jsonl"):
        ep = int(row["episode_index"])
        length = int(row["length"])
        chunk = ep // chunks_size
        fps = float(info.get("fps") or 1)
        videos = {
            key: VideoSegment(
                root / video_tpl.format(episode_chunk=chunk, video_key=key, episode_index=ep),
                0.0,
                length / fps,
            )
            for key in video_keys
        }
        episodes.append(
            EpisodeMeta(
                episode_index=ep,
                length=length,
                tasks=[str(t) for t in row.get("tasks") or []],
                data_path=root / data_tpl.format(episode_chunk=chunk, episode_index=ep),
                videos=videos,
            )
        )
    return tasks, episodes


# ----------------------------------------------------------------------------- v3.0


def _load_v3_tasks(root: Path) -> dict[int, str]:
    path = root / V3_TASKS_PATH
    if not path.is_file():
        raise DatasetError(f"missing {path}: the LeRobot v3.0 metadata is incomplete")
    table = read_parquet(path)
    names = table.column_names
    if "task_index" not in names:
        raise DatasetError(f"{path} has no task_index column (columns: {', '.join(names)})")
    # LeRobot writes the task string as the pandas index named "task"; an unnamed
    # index comes back as __index_level_0__.
    text_col = next((c for c in ("task", "__index_level_0__") if c in names), None)
    if text_col is None:
        raise DatasetError(f"{path} has no task column (columns: {', '.join(names)})")
    indices = table.column("task_index").to_pylist()
    texts = table.column(text_col).to_pylist()
    return {int(i): str(t) for i, t in zip(indices, texts)}


def _load_v3(root: Path, info: dict[str, Any]) -> tuple[dict[int, str], list[EpisodeMeta]]:
    tasks = _load_v3_tasks(root)
    files = sorted((root / "meta/episodes").glob("chunk-*/file-*.parquet"))
    if not files:
        raise DatasetError(
            f"missing {root / 'meta/episodes'}/chunk-XXX/file-XXX.parquet: "
            "the LeRobot v3.0 metadata is incomplete"
        )
    data_tpl = info.get("data_path") or V3_DATA_PATH
    video_tpl = info.get("video_path") or V3_VIDEO_PATH
    video_keys = [k for k, f in info["features"].items() if f.get("dtype") == "video"]
    episodes = []
    for path in files:
        available = parquet_column_names(path)
        # Only the columns we need: the per-episode stats/* columns can be large.
        wanted = ["episode_index", "length", "tasks", "data/chunk_index", "data/file_index"]
        missing = [c for c in wanted if c not in available]
        if missing:
            raise DatasetError(f"{path} lacks column(s) {', '.join(missing)}")
        for key in video_keys:
            wanted += [f"videos/{key}/{p}" for p in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")]
        wanted = [c for c in wanted if c in available]
        cols = read_parquet(path, columns=wanted).to_pydict()
        for i, ep in enumerate(cols["episode_index"]):
            videos = {}
            for key in video_keys:
                prefix = f"videos/{key}/"
                if prefix + "chunk_index" not in cols:
                    raise DatasetError(f"{path} has no {prefix}chunk_index column for video feature {key!r}")
                videos[key] = VideoSegment(
                    root
                    / video_tpl.format(
                        video_key=key,
                        chunk_index=int(cols[prefix + "chunk_index"][i]),
                        file_index=int(cols[prefix + "file_index"][i]),
                    ),
                    float(cols[prefix + "from_timestamp"][i]),
                    float(cols[prefix + "to_timestamp"][i]),
                )
            episodes.append(
                EpisodeMeta(
                    episode_index=int(ep),
                    length=int(cols["length"][i]),
                    tasks=[str(t) for t in cols["tasks"][i] or []],
                    data_path=root
                    / data_tpl.format(
                        chunk_index=int(cols["data/chunk_index"][i]),
                        file_index=int(cols["data/file_index"][i]),
                    ),
                    videos=videos,
                )
            )
    return tasks, episodes

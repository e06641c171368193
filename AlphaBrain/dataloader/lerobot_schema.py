"""The features and parquet schema of the LeRobot datasets the writer produces.

`build_features` is the `features` mapping of meta/info.json, `arrow_schema` the
parquet schema derived from it (Hugging Face features in its metadata), and
`episode_table` one episode's frames as a table of that schema.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from AlphaBrain.dataloader.parquet_io import IMAGE_STRUCT, encode_png, hf_features_metadata
from AlphaBrain.dataloader.video import codec_label, pick_encoder

STATE_KEY = "observation.state"
ACTION_KEY = "action"
CAMERA_PREFIX = "observation.images."
INDEX_FEATURES = {
    "timestamp": "float32",
    "frame_index": "int64",
    "episode_index": "int64",
    "index": "int64",
    "task_index": "int64",
}


def camera_key(camera: str) -> str:
    return f"{CAMERA_PREFIX}{camera}"


def build_features(
    *,
    version: str,
    fps: int,
    cameras: dict[str, tuple[int, int]],
    image_storage: str,
    state_dim: int,
    action_dim: int,
    state_names: Sequence[str] | None = None,
    action_names: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """info.json's `features`: cameras (stored as `image_storage`), state, action, then the index columns."""
    feats: dict[str, dict[str, Any]] = {}
    for cam, (h, w) in cameras.items():
        ft: dict[str, Any] = {"dtype": image_storage, "shape": [h, w, 3]}
        if image_storage == "video":
            ft["names"] = ["height", "width", "channels"]
            ft["info"] = {
                "video.height": h, "video.width": w, "video.codec": codec_label(pick_encoder()),
                "video.pix_fmt": "yuv420p", "video.is_depth_map": False, "video.fps": fps,
                "video.channels": 3, "has_audio": False,
            }
        else:
            ft["names"] = ["height", "width", "channel"]
        feats[camera_key(cam)] = ft
    for key, dim, names, prefix in (
        (STATE_KEY, state_dim, state_names, "state"),
        (ACTION_KEY, action_dim, action_names, "action"),
    ):
        names = list(names) if names is not None else [f"{prefix}_{i}" for i in range(dim)]
        if len(names) != dim:
            raise ValueError(f"{key}: {len(names)} names given for {dim} dimensions")
        feats[key] = {"dtype": "float32", "shape": [dim], "names": names}
    for key, dtype in INDEX_FEATURES.items():
        feats[key] = {"dtype": dtype, "shape": [1], "names": None}
    if version == "v3.0":
        for ft in feats.values():
            if ft["dtype"] != "video":
                ft["fps"] = fps
    return feats


def arrow_schema(features: dict[str, dict[str, Any]]) -> pa.Schema:
    """The parquet schema of the data files: every feature but the videos, which live in mp4 files."""
    fields, columns = [], []
    for key, ft in features.items():
        if ft["dtype"] == "video":
            continue
        if ft["dtype"] == "image":
            typ = IMAGE_STRUCT
        elif list(ft["shape"]) == [1]:
            typ = pa.from_numpy_dtype(np.dtype(ft["dtype"]))
        else:
            typ = pa.list_(pa.float32(), int(ft["shape"][0]))
        fields.append(pa.field(key, typ))
        columns.append(key)
    return pa.schema(fields, metadata=hf_features_metadata(features, columns))


def episode_table(schema: pa.Schema, columns: dict[str, Any], images: dict[str, np.ndarray]) -> pa.Table:
    """One episode as a table of `schema`: numeric `columns` by key, camera frames (PNG-encoded) by camera name."""
    arrays = []
    for f in schema:
        if f.name in columns:
            value = columns[f.name]
            if pa.types.is_fixed_size_list(f.type):
                arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(value.reshape(-1)), f.type.list_size))
            else:
                arrays.append(pa.array(value, type=f.type))
        else:
            cam = f.name[len(CAMERA_PREFIX):]
            cells = [{"bytes": encode_png(frame), "path": None} for frame in images[cam]]
            arrays.append(pa.array(cells, type=IMAGE_STRUCT))
    return pa.Table.from_arrays(arrays, schema=schema)

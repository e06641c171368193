"""Every user-facing dataset error: one line, naming the path and the fix."""

from __future__ import annotations

import json

import pytest

from AlphaBrain.dataloader import LeRobotSingleDataset
from AlphaBrain.utils.errors import DatasetError, UserError


def _raises(match: str, root, **kwargs) -> str:
    kwargs.setdefault("action_horizon", 2)
    with pytest.raises(DatasetError, match=match) as e:
        LeRobotSingleDataset(root, **kwargs)
    msg = str(e.value)
    assert "\n" not in msg and isinstance(e.value, UserError)
    return msg


def test_missing_directory(tmp_path):
    msg = _raises("does not exist", tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in msg


def test_directory_without_info_json(tmp_path):
    (tmp_path / "data").mkdir()
    _raises("not a LeRobot dataset: expected meta/info.json", tmp_path)


def test_unsupported_codebase_version(v3_image, copy_dataset):
    root = copy_dataset(v3_image)
    info = json.loads((root / "meta/info.json").read_text())
    info["codebase_version"] = "v1.6"
    (root / "meta/info.json").write_text(json.dumps(info))
    msg = _raises("codebase_version 'v1.6'", root)
    assert "v2.1" in msg and "v3.0" in msg


@pytest.mark.parametrize("fixture,relpath", [
    ("v3_image", "data/chunk-000/file-000.parquet"),
    ("v21_image", "data/chunk-000/episode_000002.parquet"),
    ("v3_image", "meta/episodes/chunk-000/file-000.parquet"),
])
def test_corrupt_parquet_names_the_file(request, copy_dataset, fixture, relpath):
    root = copy_dataset(request.getfixturevalue(fixture))
    (root / relpath).write_bytes(b"this is not a parquet file at all" * 10)
    msg = _raises("cannot read parquet file", root)
    assert relpath in msg and "re-download" in msg


def test_missing_episode_file(v21_image, copy_dataset):
    root = copy_dataset(v21_image)
    (root / "data/chunk-000/episode_000001.parquet").unlink()
    _raises("episode_000001.parquet", root)


@pytest.mark.parametrize("kwargs,match", [
    ({"state_key": "observation.proprio"}, "state key 'observation.proprio' is not a feature"),
    ({"action_key": "actions"}, "action key 'actions' is not a feature"),
    ({"image_keys": ["observation.images.top"]}, "image key 'observation.images.top' is not a camera feature"),
])
def test_missing_keys_list_the_available_ones(v3_image, kwargs, match):
    msg = _raises(match, v3_image, **kwargs)
    assert "observation.state" in msg and "observation.images.front" in msg


@pytest.mark.parametrize("horizon", [0, -3, 2.5, None])
def test_bad_action_horizon(v3_image, horizon):
    _raises("action_horizon must be an integer >= 1", v3_image, action_horizon=horizon)


def test_metadata_and_data_disagree(v21_image, copy_dataset):
    root = copy_dataset(v21_image)
    lines = (root / "meta/episodes.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["length"] = 99
    (root / "meta/episodes.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    _raises("episode 0 has 7 frames .* but the metadata says 99", root)


def test_missing_video_file(tmp_path, make_episodes, write_dataset):
    root = write_dataset(tmp_path / "vid", make_episodes(lengths=(3, 4)), version="v3.0", image_storage="video")
    ds = LeRobotSingleDataset(root, action_horizon=1)
    (root / "videos/observation.images.wrist/chunk-000/file-000.mp4").unlink()
    with pytest.raises(DatasetError, match="missing video file .*observation.images.wrist"):
        ds[0]

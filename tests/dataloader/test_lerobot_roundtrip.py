"""Writer -> reader round trips for both LeRobot versions and both image storages."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pyarrow.parquet as pq
import pytest

from AlphaBrain.dataloader import LeRobotDatasetWriter, LeRobotSingleDataset
from AlphaBrain.utils.errors import DatasetError

FRONT, WRIST = "observation.images.front", "observation.images.wrist"


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for x, y in zip(a["image"], b["image"]):
        np.testing.assert_array_equal(x, y)
    for key in ("state", "action", "action_mask"):
        np.testing.assert_array_equal(a[key], b[key])
    for key in ("lang", "task_index", "episode_index", "frame_index", "dataset_index"):
        assert a[key] == b[key]


def test_v21_and_v30_read_back_the_same_samples(v3_image, v21_image, episodes):
    v3 = LeRobotSingleDataset(v3_image, action_horizon=3)
    v21 = LeRobotSingleDataset(v21_image, action_horizon=3)
    assert (v3.version, v21.version) == ("v3.0", "v2.1")
    total = sum(len(e[1]) for e in episodes)
    assert len(v3) == len(v21) == total
    assert v3.tasks == v21.tasks == {0: "open the drawer", 1: "close the drawer", 2: "push the button"}
    assert v3.image_keys == v21.image_keys == [FRONT, WRIST]
    assert (v3.state_dim, v3.action_dim, v3.image_size, v3.fps) == (3, 4, (16, 24), 10.0)
    assert v3.embodiment == "test_bot"
    for i in range(total):
        _same(v3[i], v21[i])
    # ... and both equal what was written.
    i = 0
    for e, (images, state, action, task) in enumerate(episodes):
        for t in range(len(state)):
            s = v3[i]
            assert (s["episode_index"], s["frame_index"], s["lang"]) == (e, t, task)
            np.testing.assert_array_equal(s["image"][0], images["front"][t])
            np.testing.assert_array_equal(s["image"][1], images["wrist"][t])
            np.testing.assert_array_equal(s["state"], state[t])
            np.testing.assert_array_equal(s["action"][0], action[t])
            assert s["state"].dtype == np.float32 and s["action"].dtype == np.float32
            assert s["image"][0].dtype == np.uint8 and s["image"][0].shape == (16, 24, 3)
            i += 1


@pytest.mark.parametrize("version", ["v3.0", "v2.1"])
def test_video_storage_reads_back_approximately(tmp_path, make_episodes, write_dataset, version):
    # Smooth images: a lossy codec reproduces those closely (random noise it would not).
    eps = make_episodes(seed=1, lengths=(6, 23))  # > 1 GOP (the writer puts a keyframe every fps frames)
    yy, xx = np.mgrid[0:16, 0:24]
    for images, *_ in eps:
        for arr in images.values():
            for t in range(len(arr)):
                arr[t] = np.stack([xx * 6 + t * 3, yy * 12, np.full_like(xx, 90)], -1)[:, : arr.shape[2]]
    root = write_dataset(tmp_path / "vid", eps, version=version, image_storage="video")
    ds = LeRobotSingleDataset(root, action_horizon=2)
    info = json.loads((root / "meta/info.json").read_text())
    assert info["features"][FRONT]["dtype"] == "video"
    assert info["features"][FRONT]["info"]["video.pix_fmt"] == "yuv420p"
    assert len(list(root.rglob("*.mp4"))) == (2 if version == "v3.0" else 4)
    i = 0
    for images, state, _, _ in eps:
        for t in range(len(state)):
            s = ds[i]
            assert [im.shape for im in s["image"]] == [(16, 24, 3), (16, 16, 3)]
            for got, cam in zip(s["image"], ("front", "wrist")):
                assert np.abs(got.astype(int) - images[cam][t]).mean() < 8
            np.testing.assert_array_equal(s["state"], state[t])
            i += 1
    # Random access (one seek + decode per frame) gives exactly the frames of in-order
    # reading (whole-episode decode), in the middle of a concatenated v3.0 file too.
    in_order = [ds[i]["image"] for i in range(len(ds))]
    shuffled = LeRobotSingleDataset(root, action_horizon=2)
    for i in np.random.default_rng(0).permutation(len(ds)):
        for got, want in zip(shuffled[int(i)]["image"], in_order[i]):
            np.testing.assert_array_equal(got, want)


def test_v30_layout_matches_lerobot(v3_image):
    info = json.loads((v3_image / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (4, 27, 3)
    assert info["splits"] == {"train": "0:4"}
    assert info["features"]["action"] == {"dtype": "float32", "shape": [4], "names": [f"action_{i}" for i in range(4)],
                                          "fps": 10}
    assert (v3_image / "meta/stats.json").is_file()
    eps = pq.read_table(v3_image / "meta/episodes/chunk-000/file-000.parquet").to_pydict()
    assert eps["dataset_from_index"] == [0, 7, 12, 21] and eps["dataset_to_index"] == [7, 12, 21, 27]
    assert eps["tasks"][1] == ["close the drawer"] and eps["length"] == [7, 5, 9, 6]
    tasks = pq.read_table(v3_image / "meta/tasks.parquet")
    assert tasks.column("task").to_pylist()[2] == "push the button"
    assert b'"index_columns": ["task"]' in tasks.schema.metadata[b"pandas"]
    data = pq.read_table(v3_image / "data/chunk-000/file-000.parquet")
    assert data.schema.field(FRONT).type.names == ["bytes", "path"]
    assert data.column("index").to_pylist() == list(range(27))


def test_v21_layout_matches_lerobot(v21_image):
    info = json.loads((v21_image / "meta/info.json").read_text())
    assert info["codebase_version"] == "v2.1" and info["total_chunks"] == 1 and info["video_path"] is None
    assert sorted(p.name for p in (v21_image / "data/chunk-000").iterdir()) == [
        f"episode_{i:06d}.parquet" for i in range(4)
    ]
    lines = (v21_image / "meta/episodes.jsonl").read_text().splitlines()
    assert json.loads(lines[2]) == {"episode_index": 2, "tasks": ["push the button"], "length": 9}
    stats = [json.loads(x) for x in (v21_image / "meta/episodes_stats.jsonl").read_text().splitlines()]
    assert stats[0]["stats"]["action"]["count"] == [7]
    assert np.asarray(stats[0]["stats"][FRONT]["mean"]).shape == (3, 1, 1)


def test_v30_rolls_over_to_new_files(tmp_path, make_episodes, write_dataset):
    eps = make_episodes(seed=2, lengths=(4, 5, 3))
    root = write_dataset(tmp_path / "roll", eps, version="v3.0", data_files_size_in_mb=1e-6)
    files = sorted(p.relative_to(root).as_posix() for p in root.glob("data/*/*.parquet"))
    assert files == [f"data/chunk-000/file-00{i}.parquet" for i in range(3)]
    ds = LeRobotSingleDataset(root, action_horizon=1)
    for i, (images, state, _, _) in enumerate(eps):
        s = ds.get(i, len(state) - 1)
        np.testing.assert_array_equal(s["image"][0], images["front"][-1])


def test_writer_is_atomic(tmp_path, episodes):
    root = tmp_path / "crash"
    images, state, action, task = episodes[0]
    with pytest.raises(RuntimeError, match="boom"):
        with LeRobotDatasetWriter(root, fps=10, robot_type="x", state_dim=3, action_dim=4,
                                  cameras={"front": (16, 24), "wrist": (16, 16)}) as writer:
            writer.add_episode(images, state, action, task)
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []  # no dataset, no leftover temp dir

    with pytest.raises(ValueError, match="expected uint8"):
        w = LeRobotDatasetWriter(root, fps=10, robot_type="x", state_dim=3, action_dim=4, cameras={"front": (8, 8)})
        w.add_episode({"front": np.zeros((len(state), 8, 9, 3), np.uint8)}, state, action, task)
    w.abort()
    assert list(tmp_path.iterdir()) == []

    root.mkdir()
    with pytest.raises(DatasetError, match="already exists"):
        LeRobotDatasetWriter(root, fps=10, robot_type="x", state_dim=3, action_dim=4, cameras={"front": (8, 8)})


def test_samples_survive_pickling_for_dataloader_workers(v3_image):
    ds = LeRobotSingleDataset(v3_image, action_horizon=2)
    first = ds[3]
    clone = pickle.loads(pickle.dumps(ds))
    _same(first, clone[3])

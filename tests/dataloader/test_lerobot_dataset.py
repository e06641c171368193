"""Sample contents, action chunks, task maps, refs and mixtures."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from AlphaBrain.dataloader import (
    DataSpec,
    LeRobotMixtureDataset,
    LeRobotSingleDataset,
    Normalizer,
    compute_dataset_statistics,
)
from AlphaBrain.dataloader.synthetic import write_synthetic_dataset
from AlphaBrain.utils.errors import DatasetError

SAMPLE_KEYS = {"image", "lang", "state", "action", "action_mask", "task_index", "episode_index", "frame_index",
               "dataset_index"}


def test_action_chunk_pads_with_last_action_and_masks(v3_image, episodes):
    ds = LeRobotSingleDataset(v3_image, action_horizon=4)
    _, _, action, _ = episodes[1]  # 5 frames, starts at global index 7
    s = ds.get(1, 3)
    assert set(s) == SAMPLE_KEYS
    assert s["action"].shape == (4, 4) and s["action_mask"].dtype == bool
    np.testing.assert_array_equal(s["action"][:2], action[3:5])
    np.testing.assert_array_equal(s["action"][2], action[4])
    np.testing.assert_array_equal(s["action"][3], action[4])
    assert s["action_mask"].tolist() == [True, True, False, False]
    full = ds.get(1, 0)
    assert full["action_mask"].all()
    np.testing.assert_array_equal(full["action"], action[0:4])
    assert ds[7]["episode_index"] == 1 and ds[-1]["frame_index"] == 5


def test_images_are_writable_copies(v3_image, tmp_path, make_episodes, write_dataset):
    vid = write_dataset(tmp_path / "vid", make_episodes(lengths=(4,)), image_storage="video")
    for root in (v3_image, vid):
        ds = LeRobotSingleDataset(root, action_horizon=1)
        for i in (0, 1, 1):  # the second read of frame 1 comes from the episode cache
            img = ds[i]["image"][0]
            before = img.copy()
            img[...] = 0  # in-place augmentation must not leak into later reads
            np.testing.assert_array_equal(ds[i]["image"][0], before)


@pytest.mark.parametrize("budget_mb,decodes_per_frame", [("2048", 1), ("0", 3)])
def test_decoded_frames_are_cached_within_the_budget(v3_image, monkeypatch, budget_mb, decodes_per_frame):
    from AlphaBrain.dataloader import frame_source

    monkeypatch.setenv(frame_source.FRAME_CACHE_ENV, budget_mb)
    decoded = []
    real = frame_source.decode_image_cell
    monkeypatch.setattr(frame_source, "decode_image_cell", lambda *a: decoded.append(a) or real(*a))
    ds = LeRobotSingleDataset(v3_image, action_horizon=1)
    reads = [[img.copy() for img in ds[i]["image"]] for _ in range(3) for i in range(len(ds))]
    assert len(decoded) == decodes_per_frame * len(ds) * len(ds.image_keys)
    first = reads[: len(ds)]
    for later in (reads[len(ds): 2 * len(ds)], reads[2 * len(ds):]):
        for a, b in zip(first, later):
            for x, y in zip(a, b, strict=True):
                np.testing.assert_array_equal(x, y)


def test_a_bad_frame_cache_budget_is_one_clear_error(v3_image, monkeypatch):
    from AlphaBrain.dataloader.frame_source import FRAME_CACHE_ENV
    from AlphaBrain.utils.errors import UserError

    monkeypatch.setenv(FRAME_CACHE_ENV, "lots")
    with pytest.raises(UserError, match="ALPHABRAIN_FRAME_CACHE_MB must be a whole number of MiB"):
        LeRobotSingleDataset(v3_image, action_horizon=1)


def test_refs_index_and_episode_records(v3_image):
    ds = LeRobotSingleDataset(v3_image, action_horizon=1, dataset_index=2)
    assert ds.ref(8) == (2, 1, 1)
    assert ds.get_ref((2, 1, 1))["frame_index"] == 1
    with pytest.raises(DatasetError):
        ds.get_ref((0, 1, 1))
    with pytest.raises(IndexError):
        ds.get(1, 5)
    with pytest.raises(IndexError):
        ds[len(ds)]
    assert [(e.episode_index, e.length, e.task_index, e.start) for e in ds.episodes] == [
        (0, 7, 0, 0), (1, 5, 1, 7), (2, 9, 2, 12), (3, 6, 0, 21)
    ]


def test_task_map_and_indices_for_episodes(v21_image):
    ds = LeRobotSingleDataset(v21_image, action_horizon=1)
    assert ds.episode_task_map() == {0: [0, 3], 1: [1], 2: [2]}
    idx = ds.indices_for_episodes([3, 1])
    assert idx.dtype == np.int64
    assert idx.tolist() == list(range(21, 27)) + list(range(7, 12))
    assert {ds[int(i)]["task_index"] for i in ds.indices_for_episodes([0, 3])} == {0}
    assert ds.indices_for_episodes([]).shape == (0,)
    with pytest.raises(DatasetError, match="no episode 9"):
        ds.indices_for_episodes([9])


def test_episode_mixing_tasks_is_an_error(v21_image, copy_dataset):
    root = copy_dataset(v21_image)
    path = root / "data/chunk-000/episode_000001.parquet"
    table = pq.read_table(path)
    tasks = np.array(table.column("task_index").to_pylist())
    tasks[2:] = 2
    pq.write_table(table.set_column(table.schema.get_field_index("task_index"), "task_index", pa.array(tasks)), path)
    ds = LeRobotSingleDataset(root, action_horizon=1)
    assert ds.get(1, 3)["lang"] == "push the button"  # each frame keeps its own instruction
    with pytest.raises(DatasetError, match=r"episode\(s\) \[1\] mix several task_index"):
        ds.episode_task_map()


def test_spec_image_keys_and_embodiment(v3_image):
    ds = LeRobotSingleDataset(v3_image, action_horizon=5, image_keys=["observation.images.wrist"], embodiment="arm")
    assert ds.spec() == DataSpec(state_dim=3, action_dim=4, action_horizon=5, num_cameras=1, image_size=(16, 16))
    assert ds.data_spec.action_horizon == 5 and ds.spec(2).action_horizon == 2
    assert len(ds[0]["image"]) == 1 and ds.embodiment == "arm"
    state, action = ds.raw_arrays()
    assert state.shape == (27, 3) and action.dtype == np.float32


def test_normalizer_is_applied_to_state_and_action(v3_image):
    ds = LeRobotSingleDataset(v3_image, action_horizon=3)
    raw = ds[4]
    norm = Normalizer(compute_dataset_statistics([ds])["test_bot"])
    ds.set_normalizer(norm)
    s = ds[4]
    np.testing.assert_allclose(s["state"], norm.normalize_state(raw["state"]), rtol=1e-6)
    np.testing.assert_allclose(s["action"], norm.normalize_action(raw["action"]), rtol=1e-6)
    assert np.abs(s["action"]).max() <= 1.0 and s["state"].dtype == np.float32
    ds.set_normalizer(None)
    np.testing.assert_array_equal(ds[4]["action"], raw["action"])


def test_mixture_concatenates_with_refs(v3_image, v21_image):
    a = LeRobotSingleDataset(v3_image, action_horizon=2)
    b = LeRobotSingleDataset(v21_image, action_horizon=2, embodiment="other")
    mix = LeRobotMixtureDataset([a, b], weights=[1.0, 3.0])
    assert len(mix) == 54 and (a.dataset_index, b.dataset_index) == (0, 1)
    assert mix.ref(27) == (1, 0, 0) and mix.ref(26) == (0, 3, 5)
    assert mix[30]["dataset_index"] == 1 and mix.get_ref((1, 0, 3))["frame_index"] == 3
    assert mix.tasks[1][2] == "push the button" and mix.embodiments == ["test_bot", "other"]
    assert mix.indices_for_episodes([1], dataset_index=1).tolist() == list(range(34, 39))
    assert mix.spec().num_cameras == 2
    w = mix.frame_weights()
    assert np.isclose(w[:27].sum(), 1.0) and np.isclose(w[27:].sum(), 3.0)
    stats = compute_dataset_statistics(mix)
    mix.set_normalizer({e: Normalizer(s) for e, s in stats.items()})
    assert np.abs(mix[40]["action"]).max() <= 1.0
    with pytest.raises(DatasetError, match="no normalizer for embodiment"):
        mix.set_normalizer({"test_bot": Normalizer(stats["test_bot"])})


def test_mixture_with_different_shapes_has_no_single_spec(v3_image, tmp_path):
    other = write_synthetic_dataset(tmp_path / "syn", num_tasks=1, episodes_per_task=1, episode_length=4)
    mix = LeRobotMixtureDataset([LeRobotSingleDataset(v3_image, action_horizon=1),
                                 LeRobotSingleDataset(other, action_horizon=1)])
    with pytest.raises(DatasetError, match="different shapes"):
        mix.spec()


def test_works_with_a_torch_dataloader(v3_image):
    ds = LeRobotSingleDataset(v3_image, action_horizon=2)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True, collate_fn=list,
                                         generator=torch.Generator().manual_seed(0))
    batch = next(iter(loader))
    assert len(batch) == 4 and all(set(s) == SAMPLE_KEYS for s in batch)


@pytest.mark.parametrize("version,storage", [("v3.0", "image"), ("v2.1", "video")])
def test_synthetic_dataset_is_deterministic_and_learnable(tmp_path, version, storage):
    kw = dict(num_tasks=3, episodes_per_task=2, episode_length=10, version=version, image_storage=storage)
    a = write_synthetic_dataset(tmp_path / "a", seed=3, **kw)
    b = write_synthetic_dataset(tmp_path / "b", seed=3, **kw)
    assert write_synthetic_dataset(a, seed=3, **kw) == a  # same parameters: reused
    with pytest.raises(DatasetError, match="not this synthetic dataset"):
        write_synthetic_dataset(a, seed=4, **kw)
    da, db = LeRobotSingleDataset(a, action_horizon=4), LeRobotSingleDataset(b, action_horizon=4)
    assert len(da) == 60 and da.embodiment == "synthetic"
    assert len({da.tasks[t] for t in da.tasks}) == 3
    for i in (0, 17, 59):
        np.testing.assert_array_equal(da[i]["action"], db[i]["action"])
        np.testing.assert_array_equal(da[i]["image"][0], db[i]["image"][0])
    _, action = da.raw_arrays()
    assert set(np.unique(action[:, -1]).tolist()) == {0.0, 1.0}
    # Instructions differ, and so do the images of different tasks at the same step.
    s0, s1 = da.get(0, 0), da.get(1, 0)
    assert s0["lang"] != s1["lang"] and not np.array_equal(s0["image"][0], s1["image"][0])

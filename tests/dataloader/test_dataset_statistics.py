"""Statistics on hand-made data with known values; Normalizer behaviour; statistics file checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from AlphaBrain.dataloader import (
    LeRobotDatasetWriter,
    LeRobotSingleDataset,
    Normalizer,
    compute_dataset_statistics,
    load_dataset_statistics,
    save_dataset_statistics,
)
from AlphaBrain.utils.errors import DatasetError


def _known_dataset(root, robot_type="bot"):
    """101 frames in two episodes. action = [i, 0/1 gripper, constant 3, i/100]; state = [-i, 2i]."""
    i = np.arange(101, dtype=np.float32)
    action = np.stack([i, (i >= 50).astype(np.float32), np.full(101, 3.0, np.float32), i / 100], 1)
    state = np.stack([-i, 2 * i], 1)
    with LeRobotDatasetWriter(root, fps=5, robot_type=robot_type, state_dim=2, action_dim=4,
                              cameras={"cam": (2, 2)}) as w:
        for sl in (slice(0, 50), slice(50, 101)):
            n = sl.stop - sl.start
            w.add_episode({"cam": np.zeros((n, 2, 2, 3), np.uint8)}, state[sl], action[sl], "do it")
    return root


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    return _known_dataset(tmp_path_factory.mktemp("known") / "ds")


def test_statistics_have_the_known_values(known):
    stats = compute_dataset_statistics([LeRobotSingleDataset(known, action_horizon=1)])
    assert list(stats) == ["bot"]
    s = stats["bot"]
    assert (s["num_transitions"], s["num_trajectories"]) == (101, 2)
    a = s["action"]
    # np.quantile (linear) over 0..100: q01 = 1, q99 = 99 exactly.
    assert a["q01"][:3] == [1.0, 0.0, 3.0] and a["q99"][:3] == [99.0, 1.0, 3.0]
    assert a["mean"][0] == 50.0 and a["mean"][2] == 3.0
    assert np.allclose(a["q01"][3], 0.01) and np.allclose(a["q99"][3], 0.99)
    assert np.allclose(a["mean"], [50.0, 51 / 101, 3.0, 0.5])
    assert np.allclose(a["min"], [0, 0, 3, 0]) and np.allclose(a["max"], [100, 1, 3, 1])
    i = np.arange(101)
    assert np.allclose(a["std"], [i.std(), (i >= 50).std(), 0.0, i.std() / 100])
    assert a["mask"] == [True, False, True, True]  # only the exact 0/1 axis is a gripper
    assert s["state"]["mask"] == [True, True] and np.allclose(s["state"]["q01"], [-99.0, 2.0])
    assert all(type(v) is float for v in a["q01"]) and all(type(m) is bool for m in a["mask"])
    json.dumps(stats)  # plain JSON types only


def test_same_embodiment_is_pooled(known, tmp_path):
    other = _known_dataset(tmp_path / "other")
    d1 = LeRobotSingleDataset(known, action_horizon=1)
    d2 = LeRobotSingleDataset(other, action_horizon=1)
    pooled = compute_dataset_statistics([d1, d2])["bot"]
    assert pooled["num_transitions"] == 202 and pooled["num_trajectories"] == 4
    d3 = LeRobotSingleDataset(other, action_horizon=1, embodiment="second")
    assert sorted(compute_dataset_statistics([d1, d3])) == ["bot", "second"]


def test_normalizer_round_trip_binarization_and_zero_range(known):
    stats = compute_dataset_statistics([LeRobotSingleDataset(known, action_horizon=1)])["bot"]
    norm = Normalizer(stats)
    x = np.array([[1.0, 1.0, 3.0, 0.01], [50.0, 0.0, 3.0, 0.5], [99.0, 1.0, 3.0, 0.99]], np.float32)
    y = norm.normalize_action(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y[:, 0], [-1.0, 2 * (49 / 98) - 1, 1.0], atol=1e-6)
    np.testing.assert_array_equal(y[:, 1], [1.0, 0.0, 1.0])  # gripper passed through
    np.testing.assert_array_equal(y[:, 2], [0.0, 0.0, 0.0])  # zero range: no division by zero
    back = norm.unnormalize_action(y)
    np.testing.assert_allclose(back, x, rtol=1e-5, atol=1e-5)
    # Out of range is clipped; gripper values are binarized at 0.5 both ways.
    far = norm.normalize_action(np.array([1000.0, 0.7, 3.0, -5.0]))
    np.testing.assert_array_equal(far, [1.0, 1.0, 0.0, -1.0])
    assert norm.normalize_action(np.array([0.0, 0.3, 3.0, 0.0]))[1] == 0.0
    pred = norm.unnormalize_action(np.array([[[2.0, 0.49, 0.3, -1.0]], [[0.0, 0.5, -0.3, 1.0]]]))  # [B, T, A]
    assert pred.shape == (2, 1, 4)
    np.testing.assert_allclose(pred[:, 0, 0], [99.0, 50.0])
    np.testing.assert_array_equal(pred[:, 0, 1], [0.0, 1.0])
    np.testing.assert_array_equal(pred[:, 0, 2], [3.0, 3.0])
    np.testing.assert_allclose(norm.normalize_state(np.array([-50.0, 100.0])), [0.0, 2 * (98 / 196) - 1], atol=1e-6)
    with pytest.raises(DatasetError, match="has 3 dims"):
        norm.normalize_action(np.zeros(3))


def test_save_and_load_with_dim_checks(known, tmp_path):
    stats = compute_dataset_statistics([LeRobotSingleDataset(known, action_horizon=1)])
    path = save_dataset_statistics(stats, tmp_path / "run" / "dataset_statistics.json")
    assert load_dataset_statistics(path, {"bot": (2, 4)}) == stats
    assert load_dataset_statistics(path) == stats
    with pytest.raises(DatasetError) as e:
        load_dataset_statistics(path, {"bot": (2, 7)})
    msg = str(e.value)
    assert "has action dim 4 for 'bot' but the dataset has 7: it was computed for another dataset" in msg
    assert "compute_dataset_statistics.py" in msg and "\n" not in msg
    with pytest.raises(DatasetError, match="no entry for embodiment 'libero_franka'"):
        load_dataset_statistics(path, {"libero_franka": (2, 4)})
    with pytest.raises(DatasetError, match="not found"):
        load_dataset_statistics(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        load_dataset_statistics(tmp_path / "bad.json")
    assert Normalizer.from_file(path, "bot", (2, 4)).action_dim == 4

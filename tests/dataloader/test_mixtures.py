"""Named mixtures, user mixtures from YAML, directory mixtures, and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from AlphaBrain.dataloader import DATASET_NAMED_MIXTURES, MixtureEntry, load_mixture, resolve_mixture
from AlphaBrain.dataloader.synthetic import write_synthetic_dataset
from AlphaBrain.utils.errors import ConfigError, DatasetError, UserError


@pytest.fixture(scope="module")
def libero_root(tmp_path_factory) -> Path:
    """Tiny stand-ins under the real LIBERO directory names."""
    root = tmp_path_factory.mktemp("libero")
    for k, suite in enumerate(("goal", "spatial", "object", "10")):
        write_synthetic_dataset(root / f"libero_{suite}_no_noops_1.0.0_lerobot", num_tasks=2, episodes_per_task=1,
                                episode_length=4, image_size=(8, 8), cameras=("image", "wrist_image"),
                                state_dim=8, action_dim=7, seed=k)
    return root


def test_registered_libero_names():
    assert set(DATASET_NAMED_MIXTURES) >= {"libero_goal", "libero_spatial", "libero_object", "libero_10",
                                           "libero_long", "libero_all"}
    assert DATASET_NAMED_MIXTURES["libero_long"] == DATASET_NAMED_MIXTURES["libero_10"] == [
        ("libero_10_no_noops_1.0.0_lerobot", 1.0, "libero_franka")
    ]
    assert len(DATASET_NAMED_MIXTURES["libero_all"]) == 4


def test_resolve_named_mixture(libero_root):
    entries = resolve_mixture("libero_goal", str(libero_root))
    assert entries == [MixtureEntry(libero_root / "libero_goal_no_noops_1.0.0_lerobot", 1.0, "libero_franka")]
    mix = load_mixture("libero_all", libero_root, action_horizon=3)
    assert [d.dataset_index for d in mix.datasets] == [0, 1, 2, 3]
    assert {d.embodiment for d in mix.datasets} == {"libero_franka"} and len(mix) == 4 * 2 * 4


def test_extra_mixture_from_yaml(libero_root, tmp_path):
    extra = OmegaConf.create({"mine": [
        {"path": "libero_goal_no_noops_1.0.0_lerobot", "weight": 2, "embodiment": "arm"},
        {"path": str(libero_root / "libero_10_no_noops_1.0.0_lerobot")},
    ]})
    entries = resolve_mixture("mine", libero_root, extra)
    assert [(e.path.name, e.weight, e.embodiment) for e in entries] == [
        ("libero_goal_no_noops_1.0.0_lerobot", 2.0, "arm"), ("libero_10_no_noops_1.0.0_lerobot", 1.0, None)
    ]
    mix = load_mixture("mine", str(libero_root), action_horizon=1, extra=extra)
    assert mix.weights == [2.0, 1.0] and mix.datasets[1].embodiment == "synthetic"
    with pytest.raises(ConfigError, match="has no 'path'"):
        resolve_mixture("bad", libero_root, {"bad": [{"weight": 1}]})


def test_directory_paths(libero_root):
    one = libero_root / "libero_object_no_noops_1.0.0_lerobot"
    assert resolve_mixture(str(one), None) == [MixtureEntry(one, 1.0, None)]
    folder = resolve_mixture(libero_root, None)
    assert [e.path.name for e in folder] == sorted(p.name for p in libero_root.iterdir())
    # A directory name relative to data_root_dir works too.
    assert resolve_mixture(one.name, libero_root)[0].path == one


def test_unknown_name_lists_valid_ones():
    with pytest.raises(UserError) as e:
        resolve_mixture("libero_gaol", "/data")
    msg = str(e.value)
    assert 'Did you mean "libero_goal"' in msg
    for name in DATASET_NAMED_MIXTURES:
        assert name in msg


def test_missing_data_root_and_missing_directory(tmp_path):
    with pytest.raises(ConfigError, match="LEROBOT_LIBERO_DATA_DIR") as e:
        resolve_mixture("libero_goal", None)
    assert "datasets.vla_data.data_root_dir" in str(e.value)
    with pytest.raises(DatasetError) as e:
        resolve_mixture("libero_spatial", tmp_path)
    assert str(tmp_path / "libero_spatial_no_noops_1.0.0_lerobot") in str(e.value)
    assert "'libero_spatial'" in str(e.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="expected meta/info.json"):
        resolve_mixture(tmp_path / "empty", None)
    with pytest.raises(DatasetError, match="does not exist"):
        resolve_mixture(str(tmp_path / "nope"), None)


def test_a_libero_dataset_with_other_features_names_the_missing_and_extra_keys(tmp_path):
    write_synthetic_dataset(tmp_path / "libero_goal_no_noops_1.0.0_lerobot", num_tasks=2, episodes_per_task=1,
                            episode_length=4, image_size=(8, 8), cameras=("image", "front"), state_dim=6,
                            action_dim=7, seed=0)
    with pytest.raises(DatasetError) as info:
        load_mixture("libero_goal", str(tmp_path), action_horizon=2)
    message = str(info.value)
    assert "missing observation.images.wrist_image" in message
    assert "extra observation.images.front" in message
    assert "observation.state has shape [6], expected [8]" in message
    assert "--dataset" in message  # how to train on it anyway

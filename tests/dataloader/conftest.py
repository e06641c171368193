"""Fixtures for the dataloader tests: episodes made in memory, written by our own writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from AlphaBrain.dataloader import LeRobotDatasetWriter

TASKS = ["open the drawer", "close the drawer", "push the button"]
CAMERAS = {"front": (16, 24), "wrist": (16, 16)}


def _episodes(seed: int = 0, lengths=(7, 5, 9, 6), state_dim: int = 3, action_dim: int = 4):
    """Random but reproducible episodes: (images, state, action, task) tuples; task = e % 3."""
    rng = np.random.default_rng(seed)
    out = []
    for e, t in enumerate(lengths):
        images = {c: rng.integers(0, 256, size=(t, h, w, 3), dtype=np.uint8) for c, (h, w) in CAMERAS.items()}
        state = rng.normal(size=(t, state_dim)).astype(np.float32)
        action = rng.normal(size=(t, action_dim)).astype(np.float32)
        out.append((images, state, action, TASKS[e % len(TASKS)]))
    return out


def _write(root: Path, episodes, *, version="v3.0", image_storage="image", cameras=None, **kwargs) -> Path:
    _, state, action, _ = episodes[0]
    cameras = cameras or CAMERAS
    with LeRobotDatasetWriter(root, fps=10, robot_type="test_bot", state_dim=state.shape[1],
                              action_dim=action.shape[1], cameras=cameras, version=version,
                              image_storage=image_storage, **kwargs) as writer:
        for images, s, a, task in episodes:
            writer.add_episode({c: images[c] for c in cameras}, s, a, task)
    return root


@pytest.fixture(scope="session")
def episodes():
    return _episodes()


@pytest.fixture(scope="session")
def make_episodes():
    return _episodes


@pytest.fixture(scope="session")
def write_dataset():
    return _write


@pytest.fixture(scope="session")
def v3_image(tmp_path_factory, episodes) -> Path:
    return _write(tmp_path_factory.mktemp("v3") / "ds", episodes, version="v3.0")


@pytest.fixture(scope="session")
def v21_image(tmp_path_factory, episodes) -> Path:
    return _write(tmp_path_factory.mktemp("v21") / "ds", episodes, version="v2.1")


@pytest.fixture()
def copy_dataset(tmp_path):
    """A private copy of a dataset that a test may damage."""
    import shutil

    def copy(src: Path) -> Path:
        dst = tmp_path / src.name
        shutil.copytree(src, dst)
        return dst

    return copy

"""Shared fixtures: small LeRobot datasets written by the tests themselves (never downloaded)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests run on CPU with a fixed thread count so results (and bitwise resume checks) are stable; under
# pytest-xdist (scripts/run_tests.sh) every worker is one of the cores already.
os.environ.setdefault("OMP_NUM_THREADS", "1" if os.environ.get("PYTEST_XDIST_WORKER") else "2")

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory) -> Path:
    """A 3-task v3.0 dataset with parquet-stored images (fast to read)."""
    from AlphaBrain.dataloader.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("data") / "synthetic_3task"
    return write_synthetic_dataset(root, num_tasks=3, episodes_per_task=3, episode_length=12, image_size=(32, 32), seed=0)


@pytest.fixture(scope="session")
def synthetic_mixture(tmp_path_factory) -> Path:
    """A folder of two single-task datasets: a by_dataset stream."""
    from AlphaBrain.dataloader.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("mix")
    for i in range(2):
        write_synthetic_dataset(root / f"part_{i}", num_tasks=1, episodes_per_task=2, episode_length=10,
                                image_size=(32, 32), seed=10 + i)
    return root

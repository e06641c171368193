"""Demo generation: a tiny stream reads back through the dataloader, deterministically, and is cached."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from AlphaBrain.utils.errors import DatasetError, UserError

pytestmark = pytest.mark.usefixtures("metaworld_available")

TINY = ["button-press-topdown-v3", "plate-slide-v3"]  # the two shortest expert episodes


@pytest.fixture(scope="module")
def tiny_stream(tmp_path_factory):
    from AlphaBrain.benchmarks.metaworld import generate_stream_dataset

    root = tmp_path_factory.mktemp("mw") / "tiny"
    logs: list[str] = []
    out = generate_stream_dataset(TINY, root, episodes_per_task=2, seed=3, image_size=(32, 32),
                                  workers=1, progress=False, log=logs.append)
    assert out == root and any("Wrote" in m for m in logs)
    return root


@pytest.mark.slow
def test_tiny_stream_reads_back(tiny_stream):
    from AlphaBrain.benchmarks.metaworld import TASKS
    from AlphaBrain.benchmarks.metaworld.generate import TAIL_STEPS
    from AlphaBrain.dataloader import LeRobotSingleDataset

    ds = LeRobotSingleDataset(tiny_stream, action_horizon=8)
    assert ds.embodiment == "metaworld_sawyer" and ds.fps == 80 and ds.version == "v3.0"
    assert ds.tasks == {0: TASKS[TINY[0]].instruction, 1: TASKS[TINY[1]].instruction}
    assert ds.episode_task_map() == {0: [0, 1], 1: [2, 3]}  # task_index in stream order
    sample = ds[0]
    assert len(sample["image"]) == 1 and sample["image"][0].shape == (32, 32, 3)
    assert sample["image"][0].dtype == np.uint8
    assert sample["state"].shape == (4,) and sample["action"].shape == (8, 4)
    assert sample["lang"] == TASKS[TINY[0]].instruction
    state, action = ds.raw_arrays()
    assert state.shape[1] == 4 and action.shape[1] == 4
    assert np.all(np.abs(action) <= 1.0)
    for ep in ds.episodes:  # every episode ends a short tail after success, within the task's limit
        assert TAIL_STEPS < ep.length <= TASKS[TINY[ep.task_index]].max_steps
    info = json.loads((tiny_stream / "meta" / "info.json").read_text())
    assert info["alphabrain_metaworld"]["tasks"][0][0] == TINY[0]


@pytest.mark.slow
def test_generation_is_deterministic_and_cached(tiny_stream, tmp_path):
    from AlphaBrain.benchmarks.metaworld import generate_stream_dataset
    from AlphaBrain.dataloader import LeRobotSingleDataset

    stamp = (tiny_stream / "meta" / "info.json").stat().st_mtime_ns
    logs: list[str] = []
    generate_stream_dataset(TINY, tiny_stream, episodes_per_task=2, seed=3, image_size=(32, 32),
                            progress=False, log=logs.append)
    assert any("Reusing" in m for m in logs)
    assert (tiny_stream / "meta" / "info.json").stat().st_mtime_ns == stamp

    with pytest.raises(DatasetError, match="--force"):
        generate_stream_dataset(TINY, tiny_stream, episodes_per_task=3, seed=3, image_size=(32, 32), progress=False)

    # Same parameters elsewhere, in two worker processes: the same arrays.
    copy = generate_stream_dataset(TINY, tmp_path / "copy", episodes_per_task=2, seed=3, image_size=(32, 32),
                                   workers=2, progress=False, log=lambda m: None)
    a, b = LeRobotSingleDataset(tiny_stream, action_horizon=1), LeRobotSingleDataset(copy, action_horizon=1)
    for x, y in zip(a.raw_arrays(), b.raw_arrays(), strict=True):
        assert np.array_equal(x, y)
    for i in (0, len(a) // 2, len(a) - 1):
        assert np.array_equal(a[i]["image"][0], b[i]["image"][0])


def test_bad_arguments_are_user_errors(tmp_path):
    from AlphaBrain.benchmarks.metaworld import generate_stream_dataset

    with pytest.raises(UserError, match="metaworld_cl5"):
        generate_stream_dataset("metaworld_cl7", tmp_path / "x")
    with pytest.raises(UserError, match="drawer-open-v3"):
        generate_stream_dataset(["drawer-opn-v3"], tmp_path / "x")
    with pytest.raises(UserError, match="out_dir"):
        generate_stream_dataset(["drawer-open-v3"])
    with pytest.raises(UserError, match="seed"):
        generate_stream_dataset("metaworld_cl5", tmp_path / "x", seed=-1)
    (tmp_path / "other").mkdir()
    with pytest.raises(DatasetError, match="not a generated Meta-World dataset"):
        generate_stream_dataset(TINY, tmp_path / "other", episodes_per_task=1, progress=False)


def test_cli_help():
    out = subprocess.run([sys.executable, "-m", "AlphaBrain.benchmarks.metaworld.generate", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for flag in ("--stream", "--episodes-per-task", "--out", "--seed", "--image-size", "--force", "metaworld_cl10"):
        assert flag in out


def test_unclosed_envs_exit_cleanly():
    code = ("from AlphaBrain.benchmarks.metaworld import MetaWorldEnv\n"
            "a = MetaWorldEnv('drawer-open-v3'); b = MetaWorldEnv('push-v3')\n"
            "a.reset(0); b.reset(1); b.step([0, 0, 0, 0])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == ""  # no EGL __del__ noise, no gymnasium warnings

"""scripts/run_continual_learning_scripts/compute_dataset_statistics.py, run as users run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from AlphaBrain.dataloader import LeRobotSingleDataset, compute_dataset_statistics, load_dataset_statistics
from AlphaBrain.dataloader.synthetic import write_synthetic_dataset

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts/run_continual_learning_scripts/compute_dataset_statistics.py"


def _run(*args: str, env: dict | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "LEROBOT_LIBERO_DATA_DIR"}
    full_env.pop("PYTHONPATH", None)  # the script must find AlphaBrain by itself
    full_env.update(env or {})
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=full_env,
                          cwd=cwd, timeout=120)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    write_synthetic_dataset(root / "libero_goal_no_noops_1.0.0_lerobot", num_tasks=2, episodes_per_task=2,
                            episode_length=6, image_size=(8, 8))
    return root


def test_dataset_dir_mode(data_root, tmp_path):
    ds_dir = data_root / "libero_goal_no_noops_1.0.0_lerobot"
    out = tmp_path / "stats.json"
    r = _run("--dataset-dir", str(ds_dir), "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "synthetic" in r.stdout and "wrote" in r.stdout
    stats = json.loads(out.read_text())
    assert stats == compute_dataset_statistics([LeRobotSingleDataset(ds_dir, action_horizon=1)])
    assert stats["synthetic"]["action"]["mask"] == [True, True, True, False]
    assert load_dataset_statistics(out, {"synthetic": (4, 4)})


def test_config_mode_uses_the_named_mixture_and_env_root(data_root, tmp_path):
    cfg = tmp_path / "my_run.yaml"
    cfg.write_text("continual_learning:\n  task_sequence:\n    base_data_mix: libero_goal\n")
    out = tmp_path / "run" / "dataset_statistics.json"
    r = _run("--config", str(cfg), "--out", str(out), env={"LEROBOT_LIBERO_DATA_DIR": str(data_root)})
    assert r.returncode == 0, r.stderr
    stats = json.loads(out.read_text())
    assert list(stats) == ["libero_franka"] and stats["libero_franka"]["num_trajectories"] == 4
    assert "libero_franka" in r.stdout and "gripper" in r.stdout


def test_bad_inputs_exit_2_with_one_line(tmp_path):
    cases = [
        ("--dataset-dir", str(tmp_path / "missing"), "--out", str(tmp_path / "o.json")),
        ("--config", str(REPO / "configs/continual_learning/cl_base.yaml"), "--out", str(tmp_path / "o.json")),
    ]
    (tmp_path / "typo.yaml").write_text("datasets:\n  vla_data:\n    data_mixx: libero_goal\n")
    cases.append(("--config", str(tmp_path / "typo.yaml"), "--out", str(tmp_path / "o.json")))
    for args in cases:
        r = _run(*args, cwd=tmp_path)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "o.json").exists()


def test_help_and_usage_errors():
    r = _run("--help")
    assert r.returncode == 0 and "--dataset-dir" in r.stdout and "--config" in r.stdout and "Examples" in r.stdout
    r = _run("--out", "x.json")
    assert r.returncode == 2 and "one of the arguments --dataset-dir --config is required" in r.stderr

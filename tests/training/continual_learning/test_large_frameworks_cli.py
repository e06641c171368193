"""The four large frameworks through run_cl_train.sh on their tiny configs: full and LoRA, checkpoints, merge, reload.

Each run is a 2-task `--smoke` run with ER on a synthetic LeRobot dataset
written by the test, exactly as a user would launch it (`--model <name>_tiny`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
WRAPPER = REPO / "scripts" / "run_continual_learning_scripts" / "run_cl_train.sh"
MODELS = ("qwengr00t_tiny", "neurovla_tiny", "llamaoft_tiny", "paligemma_tiny")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_tasks(tmp_path_factory) -> Path:
    from AlphaBrain.dataloader.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("data") / "two_tasks"
    return write_synthetic_dataset(root, num_tasks=2, episodes_per_task=2, episode_length=12, image_size=(32, 32),
                                   cameras=("image", "wrist_image"), state_dim=8, action_dim=7, seed=0)


def train(model: str, dataset: Path, run_root: Path, *extra: str) -> Path:
    env = {**os.environ, "ALPHABRAIN_PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    cmd = ["bash", str(WRAPPER), "--model", model, "--algo", "er", "--dataset", str(dataset), "--smoke",
           "--run-id", "r", "--", f"run_root_dir={run_root}", "continual_learning.replay.buffer_size_per_task=8", *extra]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_root / "r"


def _requests(loaded, n=2):
    from AlphaBrain.model.synthetic import synthetic_examples

    examples = synthetic_examples(loaded.data_spec, n)
    for ex in examples:
        ex.pop("action"), ex.pop("action_mask")
    return examples


@pytest.mark.parametrize("model", MODELS)
def test_lora_run_leaves_adapters_merges_and_reloads_as_full(model, two_tasks, tmp_path):
    from AlphaBrain.runs import load_run_model
    from AlphaBrain.training.trainer_utils.peft.merge_lora_checkpoint import main as merge_main

    run = train(model, two_tasks, tmp_path)
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    for k, step in ((0, 5), (1, 10)):
        prefix = f"task_{k}_id{k}_steps_{step}"
        assert {f"{prefix}_lora_adapter", f"{prefix}_action_model.pt", f"{prefix}_cl_state.json"} <= set(names)
    assert not any(n.endswith("_pytorch_model.pt") for n in names)  # no full copy per task

    in_memory = load_run_model(run, "last")  # merged in memory, nothing written
    assert not any(p.name.endswith("_merged.pt") for p in (run / "checkpoints").iterdir())
    requests = _requests(in_memory)
    expected = in_memory.model.predict_action(requests)

    assert merge_main(["--run-dir", str(run)]) == 0
    merged = run / "checkpoints" / "task_1_id1_steps_10_merged.pt"
    assert merged.is_file() and (run / "checkpoints" / "task_0_id0_steps_5_merged.pt").is_file()
    from_file = load_run_model(run, "last")
    assert from_file.checkpoint == merged.resolve()
    np.testing.assert_allclose(from_file.model.predict_action(requests), expected, atol=1e-5, rtol=0)

    # The merged file is a full-parameter checkpoint: a model built with lora.enabled=false loads it strictly.
    import torch

    from AlphaBrain.config.loader import BASE_CONFIG, compose_config
    from AlphaBrain.model import build_framework

    cfg = compose_config([BASE_CONFIG, run / "config.yaml"], ["lora.enabled=false"])
    full = build_framework(cfg, in_memory.data_spec)
    full.load_state_dict(torch.load(merged, weights_only=True))
    np.testing.assert_allclose(full.predict_action(requests), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("model", MODELS)
def test_full_parameter_run_with_lora_switched_off(model, two_tasks, tmp_path):
    from AlphaBrain.runs import load_run_model

    run = train(model, two_tasks, tmp_path, "--lora.enabled=false")
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert "task_1_id1_steps_10_pytorch_model.pt" in names and not any("lora" in n for n in names)
    loaded = load_run_model(run, "last")
    actions = loaded.model.predict_action(_requests(loaded))
    assert actions.shape == (2, loaded.data_spec.action_horizon, loaded.data_spec.action_dim)
    assert np.isfinite(actions).all()


def test_lora_resume_gives_the_uninterrupted_adapter(two_tasks, tmp_path):
    """Delete task 1's checkpoint and --resume: task 1 retrains from task 0's LoRA checkpoint, bit for bit."""
    import shutil

    from safetensors.torch import load_file

    run = train("qwengr00t_tiny", two_tasks, tmp_path)
    ckpts = run / "checkpoints"
    final = load_file(str(ckpts / "task_1_id1_steps_10_lora_adapter" / "adapter_model.safetensors"))
    head = (ckpts / "task_1_id1_steps_10_action_model.pt").read_bytes()
    for path in ckpts.glob("task_1_*"):
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    train("qwengr00t_tiny", two_tasks, tmp_path, "trainer.is_resume=true")
    resumed = load_file(str(ckpts / "task_1_id1_steps_10_lora_adapter" / "adapter_model.safetensors"))
    assert set(resumed) == set(final) and all((resumed[k] == final[k]).all() for k in final)
    import io

    import torch

    a = torch.load(io.BytesIO(head), weights_only=True)
    b = torch.load(ckpts / "task_1_id1_steps_10_action_model.pt", weights_only=True)
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_lora_resume_inside_a_task_gives_the_uninterrupted_adapter(two_tasks, tmp_path):
    """A LoRA run with mid-task checkpoints, cut back to its checkpoint after step 6 (inside task 1), then --resume."""
    import shutil

    import torch
    from safetensors.torch import load_file

    mid = ("trainer.save_interval=2", "trainer.keep_last=0")
    run = train("qwengr00t_tiny", two_tasks, tmp_path, *mid)
    ckpts = run / "checkpoints"
    final = load_file(str(ckpts / "task_1_id1_steps_10_lora_adapter" / "adapter_model.safetensors"))
    head = torch.load(ckpts / "task_1_id1_steps_10_action_model.pt", weights_only=True)
    assert (ckpts / "mid_task" / "task_1_id1_steps_6_lora_adapter").is_dir()
    for path in [*ckpts.glob("task_1_*"), *(ckpts / "mid_task").glob("task_1_id1_steps_8*")]:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    train("qwengr00t_tiny", two_tasks, tmp_path, *mid, "trainer.is_resume=true")
    resumed = load_file(str(ckpts / "task_1_id1_steps_10_lora_adapter" / "adapter_model.safetensors"))
    assert set(resumed) == set(final) and all(torch.equal(resumed[k], final[k]) for k in final)
    again = torch.load(ckpts / "task_1_id1_steps_10_action_model.pt", weights_only=True)
    assert set(again) == set(head) and all(torch.equal(again[k], head[k]) for k in head)


def test_real_size_model_without_weights_is_one_clear_error(two_tasks, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PRETRAINED_MODELS_DIR"}
    env.update(ALPHABRAIN_PYTHON=sys.executable, OMP_NUM_THREADS="1", PRETRAINED_MODELS_DIR=str(tmp_path / "models"))
    cmd = ["bash", str(WRAPPER), "--model", "qwengr00t", "--dataset", str(two_tasks), "--smoke", "--run-id", "real",
           "--", f"run_root_dir={tmp_path}", "--lora.enabled=false"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert f"expected the directory {tmp_path / 'models' / 'Qwen2.5-VL-3B-Instruct'}" in proc.stderr
    assert not (tmp_path / "real").exists()

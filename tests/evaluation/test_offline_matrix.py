import json

import numpy as np
import pytest

from AlphaBrain.config.loader import BASE_CONFIG, load_run_config, model_overlay_path
from AlphaBrain.evaluation.offline_matrix import format_matrix, main, offline_matrix
from AlphaBrain.training.continual_learning.train import ContinualVLATrainer


@pytest.fixture(scope="module")
def trained_run(synthetic_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    cfg = load_run_config(
        [BASE_CONFIG, model_overlay_path("tiny")],
        [f"run_root_dir={root}", "run_id=r", f"continual_learning.task_sequence={synthetic_dataset}",
         "continual_learning.steps_per_task=2", "datasets.vla_data.per_device_batch_size=4",
         "framework.tiny.image_size=32"],
    )
    return ContinualVLATrainer(cfg).train()


def test_matrix_has_one_row_per_checkpoint_and_one_column_per_task(trained_run):
    result = offline_matrix(trained_run, frames_per_task=8)
    err = np.asarray(result["error"])
    assert err.shape == (3, 3) and np.all(np.isfinite(err)) and np.all(err >= 0)
    assert result["train_order"] == [t["name"] for t in json.loads((trained_run / "stream.json").read_text())["tasks"]]
    text = format_matrix(result)
    assert "after T2" in text and "T0: push_the_red_block_left" in text


def test_cli_writes_json_and_rejects_non_run_dirs(trained_run, tmp_path, capsys):
    out = tmp_path / "m.json"
    assert main([str(trained_run), "--frames", "4", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["checkpoints"][0].startswith("task_0_id0_steps_2")
    assert main([str(tmp_path)]) == 2
    assert "not a training run dir" in capsys.readouterr().err

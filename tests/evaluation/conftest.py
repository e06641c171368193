"""The trained run the evaluation tests share: TinyVLA, 3 steps on each task of a synthetic push stream."""

import pytest

from AlphaBrain.config.loader import BASE_CONFIG, load_run_config, model_overlay_path
from AlphaBrain.training.continual_learning.train import ContinualVLATrainer


@pytest.fixture(scope="session")
def push_run(tmp_path_factory):
    from AlphaBrain.dataloader.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("push")
    data = write_synthetic_dataset(root / "synthetic_push3", num_tasks=3, episodes_per_task=3, episode_length=40,
                                   image_size=(32, 32), seed=0)
    cfg = load_run_config(
        [BASE_CONFIG, model_overlay_path("tiny")],
        [f"run_root_dir={root / 'runs'}", "run_id=r", f"continual_learning.task_sequence={data}",
         "continual_learning.steps_per_task=3", "datasets.vla_data.per_device_batch_size=8",
         "framework.tiny.image_size=32"],
    )
    return ContinualVLATrainer(cfg).train()

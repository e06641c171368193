"""The trained run the evaluation tests share: TinyVLA, 3 steps on each task of a synthetic push stream."""

from pathlib import Path

import pytest

from AlphaBrain.config.loader import BASE_CONFIG, load_run_config, model_overlay_path
from AlphaBrain.training.continual_learning.train import ContinualVLATrainer


def train_push_run(root: Path, run_id: str, *overrides: str, steps: int = 3) -> Path:
    """TinyVLA at 32 px trained `steps` steps on each task of a 3-task synthetic push stream written under `root`."""
    from AlphaBrain.dataloader.synthetic import write_synthetic_dataset

    data = write_synthetic_dataset(root / "synthetic_push3", num_tasks=3, episodes_per_task=3, episode_length=40,
                                   image_size=(32, 32), seed=0)
    cfg = load_run_config(
        [BASE_CONFIG, model_overlay_path("tiny")],
        [f"run_root_dir={root / 'runs'}", f"run_id={run_id}", f"continual_learning.task_sequence={data}",
         f"continual_learning.steps_per_task={steps}", "datasets.vla_data.per_device_batch_size=8",
         "framework.tiny.image_size=32", *overrides],
    )
    return ContinualVLATrainer(cfg).train()


@pytest.fixture(scope="session")
def train_push():
    """`train_push_run`, for tests that need a run of their own (conftest modules are not imported by name)."""
    return train_push_run


@pytest.fixture(scope="session")
def push_run(tmp_path_factory):
    return train_push_run(tmp_path_factory.mktemp("push"), "r")

"""Config builders shared by the trainer tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from AlphaBrain.config.loader import BASE_CONFIG, load_run_config, model_overlay_path

FAST = [
    "framework.tiny.image_size=32",
    "framework.tiny.vision_channels=[16,16,16]",
    "framework.tiny.vision_feature_channels=8",
    "framework.tiny.vision_dim=64",
    "datasets.vla_data.per_device_batch_size=4",
    "trainer.logging_frequency=1",
]


def tiny_config(run_root: Path, dataset: Path, *extra: str, steps: int = 3, run_id: str = "run"):
    return load_run_config(
        [BASE_CONFIG, model_overlay_path("tiny")],
        [
            f"run_root_dir={run_root}",
            f"run_id={run_id}",
            f"continual_learning.task_sequence={dataset}",
            f"continual_learning.steps_per_task={steps}",
            "continual_learning.replay.buffer_size_per_task=16",
            *FAST,
            *extra,
        ],
    )


@pytest.fixture
def make_config():
    return tiny_config

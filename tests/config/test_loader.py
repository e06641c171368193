import pytest
from omegaconf import OmegaConf

from AlphaBrain.config.loader import (
    BASE_CONFIG,
    compose_config,
    config_to_yaml,
    env_or_none,
    load_run_config,
    model_overlay_path,
    require,
)
from AlphaBrain.utils.errors import ConfigError


def test_layers_compose_left_to_right(tmp_path):
    a = tmp_path / "a.yaml"
    a.write_text("seed: 1\ntrainer:\n  logging_frequency: 3\n")
    b = tmp_path / "b.yaml"
    b.write_text("seed: 2\n")
    cfg = compose_config([BASE_CONFIG, a, b], ["--trainer.logging_frequency=7", "continual_learning.steps_per_task=9"])
    assert cfg.seed == 2
    assert cfg.trainer.logging_frequency == 7
    assert cfg.continual_learning.steps_per_task == 9
    assert cfg.continual_learning.replay.buffer_size_per_task == 500  # untouched default


def test_unknown_override_key_suggests_closest():
    with pytest.raises(ConfigError, match=r'Unknown config key "continual_learning.steps_per_tsk".*steps_per_task'):
        compose_config([], ["continual_learning.steps_per_tsk=3"])


def test_unknown_key_in_yaml_layer_names_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer:\n  gradient_cliping: 1.0\n")
    with pytest.raises(ConfigError, match=r"gradient_cliping.*bad.yaml.*gradient_clipping"):
        compose_config([bad])


def test_free_form_blocks_accept_new_keys():
    cfg = compose_config([], ["framework.tiny.width=3", "trainer.learning_rate.action_model=1e-3",
                              "continual_learning.algorithm.buffer_size_per_task=7"])
    assert cfg.framework.tiny.width == 3


def test_bad_override_syntax_and_yaml_parse_errors(tmp_path):
    with pytest.raises(ConfigError, match="key=value"):
        compose_config([], ["continual_learning.steps_per_task"])
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="Cannot parse YAML"):
        compose_config([broken])
    with pytest.raises(ConfigError, match="does not exist"):
        compose_config([tmp_path / "missing.yaml"])


def test_env_interpolation_only_fails_when_needed(monkeypatch):
    monkeypatch.delenv("LEROBOT_LIBERO_DATA_DIR", raising=False)
    cfg = compose_config([])
    assert env_or_none(cfg, "datasets.vla_data.data_root_dir") is None
    with pytest.raises(ConfigError, match="LEROBOT_LIBERO_DATA_DIR.*not set.*\\.env"):
        require(cfg, "datasets.vla_data.data_root_dir")
    # Writing the resolved config keeps the unresolvable interpolation verbatim instead of failing.
    assert "${oc.env:LEROBOT_LIBERO_DATA_DIR}" in config_to_yaml(cfg)
    monkeypatch.setenv("LEROBOT_LIBERO_DATA_DIR", "/data/libero")
    assert require(cfg, "datasets.vla_data.data_root_dir") == "/data/libero"


def test_model_overlay_lookup_lists_models():
    with pytest.raises(ConfigError, match="Unknown model \"tinyy\".*tiny"):
        model_overlay_path("tinyy")
    cfg = load_run_config([BASE_CONFIG, model_overlay_path("tiny")])
    assert cfg.framework.name


def test_tiny_model_trains_at_its_measured_batch_unless_overridden():
    # Every documented tiny-model result is at batch 64; cl_base.yaml's 16 is sized for the large models.
    base = compose_config([BASE_CONFIG])
    tiny = compose_config([BASE_CONFIG, model_overlay_path("tiny")])
    override = compose_config([BASE_CONFIG, model_overlay_path("tiny")], ["datasets.vla_data.per_device_batch_size=4"])
    assert base.datasets.vla_data.per_device_batch_size == 16
    assert tiny.datasets.vla_data.per_device_batch_size == 64
    assert override.datasets.vla_data.per_device_batch_size == 4


def test_missing_framework_is_explained():
    with pytest.raises(ConfigError, match="No model selected"):
        load_run_config([BASE_CONFIG])


def test_stream_name_refined_by_block_keys_keeps_the_name():
    cfg = compose_config([], ["continual_learning.task_sequence=/data/x",
                              "continual_learning.task_sequence.task_order=[1,0]"])
    assert OmegaConf.to_container(cfg.continual_learning.task_sequence) == {"name": "/data/x", "task_order": [1, 0]}
    named = compose_config([], ["continual_learning.task_sequence.num_tasks=3"])  # refines cl_base's libero_goal
    assert named.continual_learning.task_sequence.name == "libero_goal"
    assert named.continual_learning.task_sequence.num_tasks == 3

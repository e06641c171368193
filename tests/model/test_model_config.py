"""Framework config blocks validate themselves: unknown keys and bad values name the field."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from AlphaBrain.model import build_framework
from AlphaBrain.model.policies.tiny_vla import TinyActionModelConfig, TinyVLAConfig
from AlphaBrain.utils.errors import ConfigError, UserError


def test_config_error_is_a_user_error():
    assert issubclass(ConfigError, UserError)


@pytest.mark.parametrize(
    "block, key, pattern",
    [
        ("tiny", "image_sise", r'Unknown key "framework.tiny.image_sise". Did you mean "image_size"\?'),
        ("tiny", "random_shfit", r'Did you mean "random_shift"\?.*Valid keys: image_size'),
        ("action_model", "hiden_dim", r'Unknown key "framework.action_model.hiden_dim". Did you mean "hidden_dim"\?'),
    ],
)
def test_unknown_key_names_the_closest_valid_key(spec, block, key, pattern):
    cfg = OmegaConf.create({"framework": {"name": "TinyVLA", block: {key: 1}}})
    with pytest.raises(ConfigError, match=pattern):
        build_framework(cfg, spec)


@pytest.mark.parametrize(
    "cls, field, value, pattern",
    [
        (TinyVLAConfig, "image_size", 8, r"framework.tiny.image_size = 8 is out of range; expected an integer in \[16, 512\]"),
        (TinyVLAConfig, "image_size", "64", r"framework.tiny.image_size = '64' is not an integer"),
        (TinyVLAConfig, "random_shift", 40, r"framework.tiny.random_shift = 40 .*\[0, 16\]"),
        (TinyVLAConfig, "text_ngrams", 0, r"framework.tiny.text_ngrams = 0 .*\[1, 3\]"),
        (TinyVLAConfig, "vision_channels", [], r"framework.tiny.vision_channels = \[\] has 0 entries"),
        (TinyVLAConfig, "vision_channels", [32, 30], r"vision_groups = 8 does not divide the channel count 30"),
        (TinyVLAConfig, "film", "yes", r"framework.tiny.film = 'yes' is not a boolean"),
        (TinyActionModelConfig, "dropout", 1.5, r"framework.action_model.dropout = 1.5 .*\[0.0, 0.9\]"),
        (TinyActionModelConfig, "action_horizon", 0, r"framework.action_model.action_horizon = 0 .*\[1, 256\]"),
        (TinyActionModelConfig, "loss", "l2", r"framework.action_model.loss = 'l2' is not a valid choice.*l1, mse, huber"),
        (TinyActionModelConfig, "hidden_dim", True, r"framework.action_model.hidden_dim = True is not an integer"),
    ],
)
def test_bad_value_names_field_value_and_range(cls, field, value, pattern):
    with pytest.raises(ConfigError, match=pattern):
        cls.from_block({field: value})


def test_block_must_be_a_mapping():
    with pytest.raises(ConfigError, match="framework.tiny must be a mapping"):
        TinyVLAConfig.from_block([1, 2])


def test_valid_block_is_accepted_and_normalized():
    cfg = TinyActionModelConfig.from_block(OmegaConf.create({"loss": "MSE", "dropout": 0}))
    assert cfg.loss == "mse" and cfg.dropout == 0.0 and isinstance(cfg.dropout, float)
    assert TinyVLAConfig.from_block(None) == TinyVLAConfig()

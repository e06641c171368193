"""The framework registry: names, aliases, errors, lazy large frameworks, the YAML overlay."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from AlphaBrain.dataloader.spec import DataSpec
from AlphaBrain.model import (
    FRAMEWORK_REGISTRY,
    BaseVLAPolicy,
    TinyVLA,
    build_framework,
    known_frameworks,
    register_framework,
    resolve_framework_name,
)
from AlphaBrain.model import registry
from AlphaBrain.model.policies.tiny_vla import TinyActionModelConfig, TinyVLAConfig
from AlphaBrain.utils.errors import ConfigError, UserError

TINY_YAML = Path(__file__).resolve().parents[2] / "configs/continual_learning/models/tiny.yaml"


@pytest.mark.parametrize("name", ["TinyVLA", "tinyvla", "TINYVLA", "tiny", "Tiny"])
def test_names_match_case_insensitively(name, spec):
    assert resolve_framework_name(name) == "TinyVLA"
    assert isinstance(build_framework({"framework": {"name": name}}, spec), TinyVLA)


def test_unknown_name_lists_every_valid_name(spec):
    with pytest.raises(UserError) as info:
        build_framework({"framework": {"name": "TinyVLB"}}, spec)
    message = str(info.value)
    assert 'Unknown framework "TinyVLB"' in message
    assert 'Did you mean "TinyVLA"?' in message
    for name in ("TinyVLA", "QwenGR00T", "NeuroVLA", "LlamaOFT", "PaliGemmaOFT"):
        assert name in message


def test_large_frameworks_are_known_by_name(spec):
    assert {"QwenGR00T", "NeuroVLA", "LlamaOFT", "PaliGemmaOFT", "TinyVLA"} <= set(known_frameworks())
    assert resolve_framework_name("paligemma") == "PaliGemmaOFT"
    assert resolve_framework_name("qwengr00t") == "QwenGR00T"
    assert resolve_framework_name("LLAMAOFT") == "LlamaOFT"


def test_lazy_framework_whose_module_is_missing(spec, monkeypatch):
    monkeypatch.setitem(registry._LAZY_FRAMEWORKS, "FakeBigVLA", "AlphaBrain.model.policies._no_such_module")
    with pytest.raises(UserError, match=r'Framework "FakeBigVLA" is not part of this installation.*TinyVLA'):
        build_framework({"framework": {"name": "fakebigvla"}}, spec)


def test_lazy_framework_whose_dependency_is_missing(spec, monkeypatch, tmp_path):
    (tmp_path / "fake_big_vla_module.py").write_text("import no_such_package_for_alphabrain_tests\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry._LAZY_FRAMEWORKS, "FakeBigVLA", "fake_big_vla_module")
    with pytest.raises(UserError, match='needs the Python package "no_such_package_for_alphabrain_tests"'):
        build_framework({"framework": {"name": "FakeBigVLA"}}, spec)


def test_lazy_framework_is_imported_on_demand(spec, monkeypatch, tmp_path):
    (tmp_path / "fake_lazy_tiny.py").write_text(
        "from AlphaBrain.model import register_framework, TinyVLA\n"
        "@register_framework('LazyTiny')\n"
        "class LazyTiny(TinyVLA):\n"
        "    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry._LAZY_FRAMEWORKS, "LazyTiny", "fake_lazy_tiny")
    monkeypatch.setattr(registry, "FRAMEWORK_REGISTRY", dict(registry.FRAMEWORK_REGISTRY))
    monkeypatch.setattr(registry, "_ALIASES", dict(registry._ALIASES))
    model = build_framework({"framework": {"name": "lazytiny"}}, spec)
    assert type(model).__name__ == "LazyTiny"


def test_missing_framework_block_or_name(spec):
    with pytest.raises(ConfigError, match="no \"framework\" block"):
        build_framework({"trainer": {}}, spec)
    with pytest.raises(ConfigError, match="framework.name is not set.*TinyVLA"):
        build_framework({"framework": {"tiny": {}}}, spec)


def test_register_rejects_name_clash_and_non_policies():
    with pytest.raises(ValueError, match="already registered"):

        @register_framework("tiny")
        class Other(TinyVLA):  # noqa: F841 - a different class claiming TinyVLA's alias
            pass

    with pytest.raises(TypeError):
        register_framework("NotAPolicy")(dict)
    assert FRAMEWORK_REGISTRY["TinyVLA"] is TinyVLA
    assert issubclass(TinyVLA, BaseVLAPolicy)


def test_yaml_overlay_builds_and_matches_the_dataclass_defaults(spec):
    cfg = OmegaConf.load(TINY_YAML)
    assert cfg.framework.name == "TinyVLA"
    assert cfg.framework.action_model.action_horizon == 8
    assert OmegaConf.to_container(cfg.framework.tiny) == TinyVLAConfig().to_dict()
    assert OmegaConf.to_container(cfg.framework.action_model) == TinyActionModelConfig().to_dict()
    model = build_framework(cfg, spec)
    # Every learning-rate key except `base` names a top-level child module of the model.
    module_keys = set(cfg.trainer.learning_rate) - {"base"}
    assert module_keys == {name for name, _ in model.named_children()}


def test_yaml_horizon_must_match_the_dataset(spec):
    cfg = OmegaConf.load(TINY_YAML)
    other = DataSpec(state_dim=4, action_dim=4, action_horizon=10, num_cameras=1, image_size=(64, 64))
    with pytest.raises(ConfigError, match=r"framework.action_model.action_horizon = 8.*10 steps"):
        build_framework(cfg, other)

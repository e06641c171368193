"""apply_lora / save_lora_checkpoint / load_and_merge / merge_lora on a real (tiny) Qwen2.5-VL backbone."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from AlphaBrain.model.synthetic import synthetic_examples
from AlphaBrain.training.trainer_utils.peft import (
    BASE_WEIGHTS_FILE,
    LoraSettings,
    apply_lora,
    is_lora_model,
    load_and_merge,
    merge_lora,
    restore_lora_checkpoint,
    save_lora_checkpoint,
)
from AlphaBrain.utils.errors import ConfigError, UserError

from conftest import TINY_QWEN, PooledHeadPolicy, build_policy

LORA = {"enabled": True, "rank": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear"}


def _perturb_lora(model, seed=1):
    """LoRA B starts at zero (adapter = identity); give it values so merging has something to merge."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


def _examples(spec, n=3):
    exs = synthetic_examples(spec, n)
    for ex in exs:
        ex.pop("action"), ex.pop("action_mask")
    return exs


def test_only_lora_matrices_of_the_backbone_train_and_the_head_stays_trainable(spec):
    model = apply_lora(build_policy(spec), LORA)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable, "nothing trainable"
    backbone = {n for n in trainable if n.startswith("vlm.")}
    assert backbone and all("lora_" in n for n in backbone)
    head = {n for n, _ in model.action_model.named_parameters()}
    assert {f"action_model.{n}" for n in head} <= trainable
    # every linear layer of the language model and of the vision tower got an adapter
    assert any("visual" in n and "lora_A" in n for n in backbone)
    assert any("language_model" in n and "lora_A" in n for n in backbone)
    # training step reaches the adapters
    loss = model(synthetic_examples(spec, 2))["action_loss"]
    loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if "lora_A" in n]
    assert all(g is not None for g in grads)


def test_merge_gives_the_unmerged_outputs_and_plain_keys(spec):
    model = apply_lora(build_policy(spec), LORA).eval()
    _perturb_lora(model)
    examples = _examples(spec)
    before = model.predict_action(examples)
    reference = build_policy(spec)  # same seed: same base weights, no LoRA
    assert not np.allclose(before, reference.predict_action(examples), atol=1e-4)  # the adapter matters
    merge_lora(model)
    assert not is_lora_model(model)
    assert set(model.state_dict()) == set(reference.state_dict())
    np.testing.assert_allclose(model.predict_action(examples), before, atol=1e-5, rtol=0)


def test_save_load_merge_roundtrip_within_1e5_and_reloads_as_full(spec, tmp_path):
    model = apply_lora(build_policy(spec), LORA).eval()
    _perturb_lora(model)
    with torch.no_grad():
        model.action_model.bias.add_(0.3)  # the head is saved separately: make it differ from a fresh one
    examples = _examples(spec)
    expected = model.predict_action(examples)
    base = save_lora_checkpoint(model, tmp_path, "task_0_id0_steps_5", {"global_step": 5}, {"x": torch.ones(2)})
    adapter = tmp_path / "task_0_id0_steps_5_lora_adapter"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    assert (tmp_path / "task_0_id0_steps_5_action_model.pt").is_file()
    assert (tmp_path / BASE_WEIGHTS_FILE).is_file()  # random-init base: saved once, since nothing can rebuild it
    marker = json.loads((tmp_path / "task_0_id0_steps_5_cl_state.json").read_text())
    assert marker["lora"] is True and set(marker["files"]) >= {adapter.name, BASE_WEIGHTS_FILE}
    assert base == tmp_path / "task_0_id0_steps_5"

    fresh = build_policy(spec, seed=123)  # different random base: the saved base weights must win
    merged = load_and_merge(fresh, adapter).eval()
    assert not is_lora_model(merged)
    np.testing.assert_allclose(merged.predict_action(examples), expected, atol=1e-5, rtol=0)

    # the merged state dict loads strictly into a full-parameter model of the same config
    full = build_policy(spec, seed=7)
    full.load_state_dict(merged.state_dict())
    np.testing.assert_allclose(full.eval().predict_action(examples), expected, atol=1e-5, rtol=0)


def test_restore_into_an_injected_model_is_exact(spec, tmp_path):
    model = apply_lora(build_policy(spec), LORA)
    _perturb_lora(model)
    save_lora_checkpoint(model, tmp_path, "task_0_id0_steps_5", {"global_step": 5})
    resumed = apply_lora(build_policy(spec, seed=99), LORA)
    restore_lora_checkpoint(resumed, tmp_path / "task_0_id0_steps_5")
    a, b = model.state_dict(), resumed.state_dict()
    assert set(a) == set(b)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_adapter_for_a_different_base_is_refused(spec, tmp_path):
    model = apply_lora(build_policy(spec), LORA)
    save_lora_checkpoint(model, tmp_path, "task_0_id0_steps_5", {"global_step": 5})
    adapter = tmp_path / "task_0_id0_steps_5_lora_adapter"

    class OtherFramework(PooledHeadPolicy):
        pass

    with pytest.raises(UserError, match="different base model.*framework: adapter 'PooledHeadPolicy' vs model 'OtherFramework'"):
        load_and_merge(OtherFramework.from_config({"framework": {"qwenvl": TINY_QWEN}}, spec), adapter)
    other = build_policy(spec)
    other.vlm.hf_model.config.text_config.rope_theta = 10.0  # same shapes, another architecture config
    with pytest.raises(UserError, match="different base model.*config_sha"):
        load_and_merge(other, adapter)


def test_bad_lora_blocks_are_config_errors(spec):
    with pytest.raises(ConfigError, match='Unknown key "lora.rnak".*rank'):
        LoraSettings.from_block({"rnak": 8})
    with pytest.raises(ConfigError, match="lora.rank"):
        LoraSettings.from_block({"rank": 0})
    with pytest.raises(ConfigError, match="lora.dropout"):
        LoraSettings.from_block({"dropout": 1.5})
    with pytest.raises(ConfigError, match="matches no layer.*Linear layer names"):
        apply_lora(build_policy(spec), {"target_modules": ["no_such_proj"]})


def test_lora_on_a_model_without_backbone_is_a_config_error():
    from AlphaBrain.dataloader.spec import DataSpec
    from AlphaBrain.model import build_framework

    tiny = build_framework({"framework": {"name": "TinyVLA"}}, DataSpec(4, 4, 8, 1, (64, 64)))
    with pytest.raises(ConfigError, match="no VLM backbone.*lora.enabled=false"):
        apply_lora(tiny, LORA)

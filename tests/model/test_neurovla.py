"""NeuroVLA (Qwen2.5-VL + Q-Former + spiking head): the tiny model on CPU, the full size on the meta device."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from AlphaBrain.config.loader import compose_config
from AlphaBrain.dataloader.spec import DataSpec
from AlphaBrain.model import build_framework
from AlphaBrain.model.policies.neurovla import NeuroVLA
from AlphaBrain.model.modules.qformer import QFormer
from AlphaBrain.model.synthetic import synthetic_examples
from AlphaBrain.utils.errors import ConfigError, UserError

MODELS = Path(__file__).resolve().parents[2] / "configs/continual_learning/models"
SPEC = DataSpec(state_dim=8, action_dim=7, action_horizon=8, num_cameras=2, image_size=(64, 64))


def tiny_cfg(**framework_overrides) -> dict:
    cfg = OmegaConf.to_container(compose_config([MODELS / "neurovla_tiny.yaml"]), resolve=False)
    cfg["framework"].update(framework_overrides)
    return cfg


@pytest.fixture(scope="module")
def model() -> NeuroVLA:
    torch.manual_seed(0)
    return build_framework(tiny_cfg(), SPEC)


# ---- Q-Former ---------------------------------------------------------------------------------------------

def test_qformer_ignores_padded_vlm_tokens_bitwise():
    torch.manual_seed(0)
    qformer = QFormer(vlm_dim=48, dim=32, num_queries=6, num_layers=2, num_heads=4).eval()
    hidden = torch.randn(3, 20, 48)
    mask = torch.ones(3, 20, dtype=torch.bool)
    mask[0, 11:] = False
    mask[1, 17:] = False
    out = qformer(hidden, mask)
    changed = hidden.clone()
    changed[0, 11:] = torch.randn(9, 48) * 100
    changed[1, 17:] = float("nan")  # garbage at padded positions (e.g. a bf16 overflow) must not leak
    assert torch.equal(qformer(changed, mask), out)
    # ... while a real token does change the output.
    changed[0, 3] += 1.0
    assert not torch.equal(qformer(changed, mask)[0], out[0])


def test_qformer_output_shape_dtype_and_degenerate_masks():
    torch.manual_seed(0)
    qformer = QFormer(vlm_dim=48, dim=32, num_queries=6, num_layers=1, num_heads=4)
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[1] = False  # a sample with no valid token: attends to zeros instead of producing NaN
    out = qformer(torch.randn(2, 5, 48, dtype=torch.bfloat16), mask)
    assert out.shape == (2, 6, 32) and out.dtype == torch.float32 and bool(out.isfinite().all())
    with pytest.raises(ValueError, match="mask"):
        qformer(torch.randn(2, 5, 48), mask[:, :4])


# ---- the tiny framework ---------------------------------------------------------------------------------

def test_children_are_the_learning_rate_keys(model):
    names = [name for name, _ in model.named_children()]
    assert names == ["vlm", "qformer", "action_model"]
    lr_keys = set(OmegaConf.load(MODELS / "neurovla_tiny.yaml").trainer.learning_rate) - {"base"}
    assert lr_keys == set(names)
    assert lr_keys == set(OmegaConf.load(MODELS / "neurovla.yaml").trainer.learning_rate) - {"base"}
    assert model.lora_target is model.vlm.hf_model


def test_forward_backward_reaches_every_trainable_parameter(model):
    model.train()
    model.zero_grad(set_to_none=True)
    out = model(synthetic_examples(SPEC, 3))
    loss = out["action_loss"]
    assert loss.dim() == 0 and bool(torch.isfinite(loss))
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert missing == []
    model.zero_grad(set_to_none=True)


def test_predict_action_shape_dtype_determinism_and_mode(model):
    examples = synthetic_examples(SPEC, 3, seed=5)
    model.train()
    first = model.predict_action(examples)
    assert model.training  # predict_action puts the mode back
    assert isinstance(first, np.ndarray) and first.shape == (3, SPEC.action_horizon, SPEC.action_dim)
    assert first.dtype == np.float32 and np.isfinite(first).all()
    model.predict_action(synthetic_examples(SPEC, 2, seed=9))  # no state carried between calls
    np.testing.assert_array_equal(model.predict_action(examples), first)
    model.eval()
    outputs = model.action_outputs(examples)
    assert outputs.requires_grad
    np.testing.assert_array_equal(outputs.detach().numpy(), first)
    rates = model.spike_rates(examples)
    assert [r.shape for r in rates] == [(3, 64), (3, 64)]
    model.train()


def test_a_few_steps_lower_the_loss():
    torch.manual_seed(0)
    policy = build_framework(tiny_cfg(), SPEC)
    examples = synthetic_examples(SPEC, 8, seed=1)
    opt = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    with torch.no_grad():
        before = float(policy(examples)["action_loss"])
    for _ in range(15):
        loss = policy(examples)["action_loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = float(policy(examples)["action_loss"])
    assert after < 0.9 * before


@pytest.mark.parametrize("size", [56, 224])  # the tiny and the full-size geometry (14-px patches, 2x2 merge)
def test_torch_preprocessing_equals_the_pil_image_processor(model, size):
    from PIL import Image
    from transformers import Qwen2VLImageProcessorPil

    from AlphaBrain.model.backbones.qwen2_5_vl import qwen_patchify

    rng = np.random.default_rng(size)
    frames = rng.integers(0, 256, size=(2, size, size, 3), dtype=np.uint8)
    reference = Qwen2VLImageProcessorPil()(images=[Image.fromarray(f) for f in frames], return_tensors="pt")
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    if size == model.vlm.image_size[0]:
        pixels, grid = model.vlm.preprocess(x)  # the path NeuroVLA runs
    else:
        pixels, grid = qwen_patchify(x, patch_size=14, merge_size=2, temporal_patch_size=2)
    assert torch.equal(grid, reference["image_grid_thw"])
    torch.testing.assert_close(pixels, reference["pixel_values"].float(), atol=1e-5, rtol=0)


# ---- configuration errors --------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"qformr": {}}, r'Unknown key "framework.qformr" for NeuroVLA. Did you mean "qformer"\?'),
        ({"qformer": {"num_query": 8}}, r'Unknown key "framework.qformer.num_query". Did you mean "num_queries"\?'),
        ({"action_model": {"num_step": 4}}, r'Unknown key "framework.action_model.num_step"'),
        ({"qformer": {"dim": 30, "num_heads": 4}}, r"framework.qformer.dim = 30 is not a multiple"),
        ({"action_model": {"beta": 1.5}}, r"framework.action_model.beta = 1.5 is out of range"),
        ({"action_model": {"threshold": 0}}, r"framework.action_model.threshold = 0 is out of range"),
        ({"action_model": {"pool": "max"}}, r"framework.action_model.pool = 'max' is not a valid choice"),
        ({"action_model": {"loss": "l3"}}, r"framework.action_model.loss = 'l3' is not a valid choice"),
        ({"action_model": {"action_horizon": 4}}, r"framework.action_model.action_horizon = 4 but the dataset"),
    ],
)
def test_config_errors_name_the_key(overrides, message):
    cfg = tiny_cfg()
    for block, values in overrides.items():
        cfg["framework"][block] = {**cfg["framework"].get(block, {}), **values}
    with pytest.raises(ConfigError, match=message):
        build_framework(cfg, SPEC)


def test_missing_pretrained_dir_names_the_key(monkeypatch, tmp_path):
    monkeypatch.setenv("PRETRAINED_MODELS_DIR", str(tmp_path))
    (tmp_path / "some-other-model").mkdir()
    with pytest.raises(UserError) as info:
        build_framework({"framework": {"name": "NeuroVLA"}}, SPEC)  # defaults: init pretrained
    message = str(info.value)
    assert "framework.qwenvl.base_vlm = 'Qwen2.5-VL-3B-Instruct'" in message
    assert str(tmp_path / "Qwen2.5-VL-3B-Instruct") in message and "some-other-model" in message


# ---- the full size, on the meta device (no memory) ------------------------------------------------------

def test_full_size_parameter_count_on_meta():
    cfg = compose_config([MODELS / "neurovla.yaml"], ["framework.qwenvl.init=random"])
    with torch.device("meta"):
        policy = build_framework(cfg, DataSpec(state_dim=8, action_dim=7, action_horizon=8, num_cameras=2,
                                               image_size=(224, 224)))
    counts = {name: sum(p.numel() for p in child.parameters()) for name, child in policy.named_children()}
    total = sum(counts.values())
    print(f"NeuroVLA full size: {counts} total {total:,}")
    assert counts["vlm"] == 3_754_622_976  # Qwen2.5-VL-3B (tied embedding counted once)
    assert 10e6 < counts["qformer"] < 40e6 and 1e6 < counts["action_model"] < 10e6
    assert 3.7e9 < total < 3.85e9

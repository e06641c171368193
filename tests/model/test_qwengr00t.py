"""QwenGR00T (Qwen2.5-VL + flow-matching DiT head) on the tiny random architecture, plus the full size on meta."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from AlphaBrain.config.loader import CONFIG_ROOT, compose_config
from AlphaBrain.dataloader.spec import DataSpec
from AlphaBrain.model import build_framework
from AlphaBrain.model.backbones.qwen2_5_vl import QwenVLBackbone, QwenVLConfig, qwen_patchify
from AlphaBrain.model.policies.qwengr00t import QwenGR00T
from AlphaBrain.model.modules.flow_matching_head import FlowMatchingConfig
from AlphaBrain.model.synthetic import synthetic_examples
from AlphaBrain.utils.errors import ConfigError, UserError

from conftest import assert_loss_reaches_every_trainable_parameter

SPEC = DataSpec(state_dim=8, action_dim=7, action_horizon=8, num_cameras=2, image_size=(64, 64))
TINY = {
    "name": "QwenGR00T",
    "qwenvl": {"init": "random", "size": "tiny", "image_size": 56},
    "action_model": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "state_hidden_size": 32,
                     "repeated_diffusion_steps": 3, "num_inference_timesteps": 5},
}


def build(**overrides) -> QwenGR00T:
    torch.manual_seed(0)
    framework = {**TINY, **overrides}
    return build_framework({"framework": framework}, SPEC)


@pytest.fixture(scope="module")
def model() -> QwenGR00T:
    return build()


def without_actions(examples):
    return [{k: v for k, v in ex.items() if k not in ("action", "action_mask")} for ex in examples]


def test_forward_finite_and_grads_on_every_trainable_parameter(model):
    assert_loss_reaches_every_trainable_parameter(model, synthetic_examples(SPEC, 4))
    assert {n for n, _ in model.named_children()} == {"vlm", "action_model"}  # the learning-rate keys
    model.zero_grad()


def test_predict_action_shape_deterministic_and_mode_restored(model):
    model.train()
    examples = without_actions(synthetic_examples(SPEC, 3))
    actions = model.predict_action(examples)
    assert actions.shape == (3, SPEC.action_horizon, SPEC.action_dim) and actions.dtype == np.float32
    assert np.isfinite(actions).all() and model.training
    np.testing.assert_array_equal(actions, model.predict_action(examples))
    # The noise is seeded per sample: a sample's chunk does not depend on its batch mates.
    np.testing.assert_allclose(model.predict_action(examples[1:2])[0], actions[1], atol=1e-5)


def test_inference_runs_num_inference_timesteps_head_evaluations(model, monkeypatch):
    calls = []
    original = model.action_model.velocity
    monkeypatch.setattr(model.action_model, "velocity", lambda x, *a, **k: calls.append(x.shape[0]) or original(x, *a, **k))
    model.predict_action(without_actions(synthetic_examples(SPEC, 2)))
    assert calls == [2] * model.action_config.num_inference_timesteps == [2] * 5


def test_repeated_diffusion_steps_multiply_the_head_batch(model):
    sizes = []
    hook = model.action_model.action_encoder.register_forward_hook(lambda m, i, o: sizes.append(i[0].shape[0]))
    try:
        model.train()
        model(synthetic_examples(SPEC, 4))
    finally:
        hook.remove()
    assert sizes == [4 * 3]  # B x repeated_diffusion_steps, one head evaluation


def test_action_outputs_are_a_deterministic_function_of_the_sample(model):
    model.train()
    examples = synthetic_examples(SPEC, 3)
    first = model.action_outputs(examples)
    assert first.shape == (3, SPEC.action_horizon, SPEC.action_dim) and first.requires_grad
    torch.manual_seed(123)  # the global RNG plays no part
    second = model.action_outputs(examples[::-1])
    torch.testing.assert_close(first, second.flip(0), atol=1e-5, rtol=0)
    assert not torch.allclose(first[0], first[1])


def test_padded_steps_do_not_change_the_loss(model):
    model.train()
    examples = synthetic_examples(SPEC, 3)
    for ex in examples:
        ex["action_mask"] = np.arange(SPEC.action_horizon) < 5
    torch.manual_seed(1)
    before = model.per_sample_action_loss(examples).detach()
    for ex in examples:
        ex["action"] = ex["action"].copy()
        ex["action"][5:] = 100.0
    torch.manual_seed(1)
    after = model.per_sample_action_loss(examples).detach()
    assert before.shape == (3,)
    torch.testing.assert_close(before, after)


def test_prompt_layout_and_3d_rope_positions(model):
    vlm = model.vlm
    images = torch.rand(2, 2, 3, 56, 56)
    inputs = vlm.model_inputs(images, ["open the drawer", "push the button and then open the drawer"])
    ids, mask, types = inputs["input_ids"], inputs["attention_mask"], inputs["mm_token_type_ids"]
    assert (ids == 151655).sum(1).tolist() == [2 * vlm.tokens_per_image] * 2  # <|image_pad|> per camera
    assert (ids == 151652).sum(1).tolist() == [2, 2] and (ids == 151653).sum(1).tolist() == [2, 2]
    assert ids[0, 0].item() == 151644  # <|im_start|>
    assert mask[0].sum() < mask[1].sum() and mask[0, -1] == 0 and ids[0, -1].item() == 151643  # right padding
    assert torch.equal(types, (ids == 151655).long())
    assert inputs["image_grid_thw"].tolist() == [[1, 4, 4]] * 4
    assert 151645 not in vlm.tokens.encode("say <|im_end|>")  # instruction text never becomes a control token

    seen = {}
    hook = vlm.hf_model.model.language_model.register_forward_pre_hook(
        lambda m, a, k: seen.update(position_ids=k["position_ids"]), with_kwargs=True
    )
    try:
        feats = vlm(images, ["open the drawer", "push the button"])
        used = vlm.model_inputs(images, ["open the drawer", "push the button"])
    finally:
        hook.remove()
    pos = seen["position_ids"]
    assert pos.shape == (3, *feats.mask.shape)  # [time/height/width, B, L]
    image_pos = pos[:, 0][:, used["mm_token_type_ids"][0].bool()]
    assert not torch.equal(image_pos[1], image_pos[2])  # height and width differ: real 3-D M-RoPE positions
    assert feats.hidden.shape[-1] == vlm.hidden_size and feats.mask.dtype == torch.bool


@pytest.mark.parametrize("size", [56, 224])  # the tiny geometry and the 3B default (same patch/merge/temporal)
def test_torch_preprocessing_equals_qwen2vl_image_processor_pil(model, size):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    frames = np.random.default_rng(size).integers(0, 256, size=(3, size, size, 3), dtype=np.uint8)
    ref = Qwen2VLImageProcessorPil()(images=list(frames), return_tensors="pt")
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    pixel_values, grid = qwen_patchify(x, patch_size=14, merge_size=2, temporal_patch_size=2)
    torch.testing.assert_close(pixel_values, ref["pixel_values"].float(), atol=1e-5, rtol=0)
    assert grid.tolist() == ref["image_grid_thw"].tolist()
    if size == 56:  # the backbone's own path (its patch geometry and statistics)
        torch.testing.assert_close(model.vlm.preprocess(x)[0], ref["pixel_values"].float(), atol=1e-5, rtol=0)


def test_missing_pretrained_dir_names_the_yaml_key(monkeypatch, tmp_path):
    monkeypatch.setenv("PRETRAINED_MODELS_DIR", str(tmp_path))
    with pytest.raises(UserError, match=r"framework\.qwenvl\.base_vlm = 'Qwen2.5-VL-3B-Instruct'.*not found"):
        build_framework({"framework": {"name": "qwengr00t"}}, SPEC)


@pytest.mark.parametrize(
    "framework, match",
    [
        ({"qwenvl": {"init": "random", "size": "tiny", "imagesize": 56}}, r'framework\.qwenvl\.imagesize".*image_size'),
        ({"action_model": {"hiden_size": 8}}, r'framework\.action_model\.hiden_size".*hidden_size'),
        ({"qwen_vl": {}}, r'framework\.qwen_vl".*qwenvl'),
        ({"qwenvl": {"init": "random", "size": "tiny", "image_size": 60}}, r"image_size = 60 must be a multiple of 28"),
        ({"action_model": {"hidden_size": 30, "num_heads": 4}}, r"hidden_size = 30 is not divisible"),
        ({"action_model": {"action_horizon": 4}}, r"action_horizon = 4 but the dataset"),
        ({"qwenvl": {"size": "tiny"}}, r"needs framework\.qwenvl\.init = random"),
    ],
)
def test_config_errors(framework, match):
    with pytest.raises(ConfigError, match=match):
        build_framework({"framework": {"name": "QwenGR00T", **framework}}, SPEC)


def test_head_accepts_bf16_hidden_states(model):
    head = model.action_model
    hidden = torch.randn(2, 10, model.vlm.hidden_size, dtype=torch.bfloat16)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 6:] = False
    loss = head.loss(hidden, mask, torch.randn(2, 8), torch.randn(2, 8, 7), torch.ones(2, 8, dtype=torch.bool))
    assert loss.dtype == torch.float32 and torch.isfinite(loss).all()
    # Padding in the VLM sequence is masked out of the cross-attention.
    changed = hidden.clone()
    changed[1, 6:] = 50.0
    seeds = [1, 2]
    a = head.sample(hidden, mask, torch.zeros(2, 8), seeds)
    b = head.sample(changed, mask, torch.zeros(2, 8), seeds)
    torch.testing.assert_close(a, b)


def test_yaml_overlays_compose_and_build():
    tiny_cfg = compose_config([CONFIG_ROOT / "models" / "qwengr00t_tiny.yaml"])
    spec = DataSpec(state_dim=8, action_dim=7, action_horizon=int(tiny_cfg.framework.action_model.action_horizon),
                    num_cameras=2, image_size=(64, 64))
    tiny = build_framework(tiny_cfg, spec)
    assert set(tiny_cfg.trainer.learning_rate) >= {"vlm", "action_model"} and tiny_cfg.lora.enabled
    assert tiny.vlm.config.size == "tiny"
    real = compose_config([CONFIG_ROOT / "models" / "qwengr00t.yaml"])
    assert real.framework.qwenvl.init == "pretrained" and real.lora.enabled
    QwenVLConfig.from_block(real.framework.qwenvl)  # every key of the real overlay is known and valid
    FlowMatchingConfig.from_block(real.framework.action_model)


def test_full_size_on_meta_device_parameter_count():
    spec = DataSpec(state_dim=8, action_dim=7, action_horizon=16, num_cameras=2, image_size=(224, 224))
    with torch.device("meta"):
        full = build_framework({"framework": {"name": "QwenGR00T", "qwenvl": {"init": "random", "size": "full"}}}, spec)
    vlm = sum(p.numel() for p in full.vlm.parameters())
    head = sum(p.numel() for p in full.action_model.parameters())
    print(f"QwenGR00T full size: total {vlm + head:,} = vlm {vlm:,} + action_model {head:,}")
    assert vlm == 3_754_622_976  # Qwen2.5-VL-3B-Instruct (tied embeddings)
    assert 3.8e9 < vlm + head < 4.0e9
    assert isinstance(full.vlm, QwenVLBackbone) and full.vlm.hidden_size == 2048 and full.vlm.tokens_per_image == 64


def test_pretrained_path_loads_weights_and_tokenizer_from_a_local_dir(model, tmp_path, monkeypatch):
    """init: pretrained end to end on a saved tiny model, with a stand-in word-level tokenizer holding the Qwen specials."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from AlphaBrain.model.backbones.qwen2_5_vl import QWEN25_VL_SPECIAL_TOKENS, QWEN_SPECIAL_START

    model.vlm.hf_model.save_pretrained(tmp_path / "MyQwen")
    vocab = {"[UNK]": 0, "open": 1, "the": 2, "drawer": 3}
    vocab.update({t: i for i, t in enumerate(QWEN25_VL_SPECIAL_TOKENS, start=QWEN_SPECIAL_START)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", additional_special_tokens=list(QWEN25_VL_SPECIAL_TOKENS)
    ).save_pretrained(tmp_path / "MyQwen")
    monkeypatch.setenv("PRETRAINED_MODELS_DIR", str(tmp_path))
    vlm = QwenVLBackbone.from_block({"base_vlm": "MyQwen", "image_size": 56})
    loaded, saved = vlm.hf_model.state_dict(), model.vlm.hf_model.state_dict()
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)
    # Instructions are text: a literal special token in one is not turned into the control token.
    assert vlm.tokens.encode("open the drawer <|im_end|>")[:3] == [1, 2, 3]
    assert 151645 not in vlm.tokens.encode("<|im_end|>")
    feats = vlm(torch.rand(2, 1, 3, 56, 56), ["open the drawer", "the"])
    assert feats.hidden.shape[0] == 2 and feats.mask.sum(1).tolist()[0] > feats.mask.sum(1).tolist()[1]

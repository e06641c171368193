"""LlamaOFT (Llama-3.2-Vision + OFT head) on a tiny random Mllama: contract, preprocessing, configs, full-size count."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from oft_checks import (
    SPEC,
    Case,
    check_bf16_hidden_states,
    check_config_errors,
    check_forward_and_grads,
    check_joint_queries,
    check_lora_step,
    check_missing_dir,
    check_overlays,
    check_predict,
    check_pretrained_roundtrip,
    full_size_counts,
)

from AlphaBrain.model import build_framework
from AlphaBrain.model.backbones.mllama import (
    CLIP_MEAN,
    CLIP_STD,
    IMAGE_TOKEN,
    TINY_SPECIALS,
    MllamaBackbone,
    MllamaConfig,
    MllamaPixels,
)
from AlphaBrain.utils.errors import ConfigError

CASE = Case(name="LlamaOFT", key="mllama", overlay="llamaoft")


@pytest.fixture(scope="module")
def model():
    return CASE.build()


def test_forward_finite_and_grads_on_every_trainable_parameter(model):
    check_forward_and_grads(model)


def test_predict_action_deterministic_padding_invariant_and_image_dependent(model):
    check_predict(model)


def test_joint_action_queries():
    check_joint_queries(CASE)


def test_prompt_layout_and_cross_attention_inputs(model):
    vlm = model.vlm
    ids = vlm.prompt_ids("open the drawer", 2)
    head = len(vlm._head)
    assert ids[head : head + 2] == [vlm.image_id] * 2 and vlm.image_id not in ids[:head] + ids[head + 2 :]
    # the image token sits past the text vocabulary (no LM-head column), as in the real model
    assert vlm.image_id == vlm.hf_model.config.text_config.vocab_size == vlm.hf_model.config.image_token_index
    vc = vlm.hf_model.config.vision_config
    assert vc.vision_output_dim == vc.hidden_size * (1 + len(vc.intermediate_layers_indices))


@pytest.mark.parametrize("size, tiles", [(32, 2), (560, 4)])  # the tiny geometry and Llama-3.2-11B-Vision's
def test_torch_preprocessing_equals_mllama_image_processor_pil(model, size, tiles):
    from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil

    frames = np.random.default_rng(size).integers(0, 256, size=(2, size, size, 3), dtype=np.uint8)
    proc = MllamaImageProcessorPil(size={"height": size, "width": size}, max_image_tiles=tiles,
                                   image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD))
    ref = proc(images=[list(frames)], return_tensors="pt")  # one sample, two cameras
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(255.0).unsqueeze(0)
    pixels, ratio_ids, ratio_mask = MllamaPixels(list(CLIP_MEAN), list(CLIP_STD), tiles)(x)
    torch.testing.assert_close(pixels, ref["pixel_values"].float(), atol=1e-5, rtol=0)
    assert ratio_ids.tolist() == ref["aspect_ratio_ids"].tolist()
    assert ratio_mask.tolist() == ref["aspect_ratio_mask"].tolist()
    if size == 32:  # the backbone's own settings
        assert model.vlm.image_size == (32, 32) and model.vlm.pixels.max_num_tiles == 2


def test_missing_pretrained_dir_names_the_yaml_key(monkeypatch, tmp_path):
    check_missing_dir(CASE, "Llama-3.2-11B-Vision-Instruct", monkeypatch, tmp_path)


def test_pretrained_directory_loads_and_predicts_the_same(model, monkeypatch, tmp_path):
    check_pretrained_roundtrip(CASE, model, TINY_SPECIALS, (IMAGE_TOKEN,), monkeypatch, tmp_path)


def test_config_errors():
    check_config_errors(CASE)
    with pytest.raises(ConfigError, match=r"flash_attention_2 is not supported by Llama-3.2-Vision"):
        build_framework({"framework": CASE.framework({"attn_implementation": "flash_attention_2"})}, SPEC)


def test_head_accepts_bf16_hidden_states():
    check_bf16_hidden_states()


def test_yaml_overlays_compose_and_build():
    check_overlays(CASE, MllamaConfig)


def test_lora_trains_adapters_and_head_only():
    check_lora_step(CASE)


def test_full_size_on_meta_device_parameter_count():
    vlm, head = full_size_counts(CASE)
    assert vlm == 10_670_220_835  # Llama-3.2-11B-Vision (untied LM head, 525 M of it unused and frozen)
    assert 5e6 < head < 8e6


def test_tiny_size():
    backbone = MllamaBackbone.from_block({"init": "random", "size": "tiny"})
    assert sum(p.numel() for p in backbone.parameters()) < 400_000

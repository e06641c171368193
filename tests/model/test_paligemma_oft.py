"""PaliGemmaOFT (PaliGemma + OFT head) on a tiny random PaliGemma: contract, preprocessing, configs, full-size count."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from oft_checks import (
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

from AlphaBrain.model.backbones.paligemma import (
    SIGLIP_MEAN,
    SIGLIP_STD,
    TINY_SPECIALS,
    PaliGemmaBackbone,
    PaliGemmaConfig,
    SiglipPixels,
)
from AlphaBrain.model.registry import resolve_framework_name

CASE = Case(name="PaliGemmaOFT", key="paligemma", overlay="paligemma")


@pytest.fixture(scope="module")
def model():
    return CASE.build()


def test_forward_finite_and_grads_on_every_trainable_parameter(model):
    check_forward_and_grads(model)


def test_predict_action_deterministic_padding_invariant_and_image_dependent(model):
    check_predict(model)


def test_joint_action_queries():
    check_joint_queries(CASE)


def test_aliases():
    assert resolve_framework_name("paligemma") == resolve_framework_name("paligemmaoft") == "PaliGemmaOFT"


def test_prompt_layout_prefix_bidirectional_queries_causal(model):
    vlm = model.vlm
    ids = vlm.prompt_ids("push", 2)
    n = 2 * vlm.tokens_per_image  # one block of image tokens per camera, first
    assert ids[:n] == [vlm.image_id] * n and ids[n] == vlm.bos_id and vlm.image_id not in ids[n:]
    assert vlm.hf_model.config.projection_dim == vlm.hidden_size  # the projector maps into the Gemma width
    images = torch.rand(1, 2, 3, *vlm.image_size)
    queries = torch.randn(1, 3, vlm.hidden_size)
    with torch.no_grad():
        base = vlm(images, ["push the button"], queries).hidden
        later_text = vlm(images, ["push the buttom"], queries).hidden
        moved = queries.clone()
        moved[0, 2] += 1.0
        later_query = vlm(images, ["push the button"], moved).hidden
    assert (base[0, 0] - later_text[0, 0]).abs().max() > 1e-6  # the prefix attends bidirectionally
    torch.testing.assert_close(base[0, :-1], later_query[0, :-1])  # queries are a causal suffix


@pytest.mark.parametrize("size", [32, 224])  # the tiny geometry and paligemma-3b-pt-224's
def test_torch_preprocessing_equals_siglip_image_processor_pil(model, size):
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    frames = np.random.default_rng(size).integers(0, 256, size=(3, size, size, 3), dtype=np.uint8)
    proc = SiglipImageProcessorPil(size={"height": size, "width": size}, image_mean=list(SIGLIP_MEAN),
                                   image_std=list(SIGLIP_STD))
    ref = proc(images=list(frames), return_tensors="pt")
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(255.0)
    torch.testing.assert_close(SiglipPixels(list(SIGLIP_MEAN), list(SIGLIP_STD))(x), ref["pixel_values"].float(),
                               atol=1e-5, rtol=0)
    if size == 32:
        assert model.vlm.image_size == (32, 32)
        torch.testing.assert_close(model.vlm.pixels(x), ref["pixel_values"].float(), atol=1e-5, rtol=0)


def test_missing_pretrained_dir_names_the_yaml_key(monkeypatch, tmp_path):
    check_missing_dir(CASE, "paligemma-3b-pt-224", monkeypatch, tmp_path)


def test_pretrained_directory_loads_and_predicts_the_same(model, monkeypatch, tmp_path):
    check_pretrained_roundtrip(CASE, model, TINY_SPECIALS, (), monkeypatch, tmp_path)


def test_config_errors():
    check_config_errors(CASE)


def test_head_accepts_bf16_hidden_states():
    check_bf16_hidden_states()


def test_yaml_overlays_compose_and_build():
    check_overlays(CASE, PaliGemmaConfig)


def test_lora_trains_adapters_and_head_only():
    check_lora_step(CASE)


def test_full_size_on_meta_device_parameter_count():
    vlm, head = full_size_counts(CASE)
    assert vlm == 2_923_466_480  # paligemma-3b-pt-224 (LM head tied to the embedding)
    assert 3e6 < head < 6e6


def test_tiny_size():
    backbone = PaliGemmaBackbone.from_block({"init": "random", "size": "tiny"})
    assert sum(p.numel() for p in backbone.parameters()) < 400_000

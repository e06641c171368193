"""Checks shared by test_llamaoft.py and test_paligemma_oft.py (the two OFT frameworks share their code too)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from AlphaBrain.config.loader import CONFIG_ROOT, compose_config
from AlphaBrain.dataloader.spec import DataSpec
from AlphaBrain.model import build_framework
from AlphaBrain.model.modules.oft_head import OFTActionHead
from AlphaBrain.model.synthetic import synthetic_examples
from AlphaBrain.utils.errors import ConfigError, UserError

from conftest import assert_loss_reaches_every_trainable_parameter

SPEC = DataSpec(state_dim=8, action_dim=7, action_horizon=8, num_cameras=2, image_size=(64, 64))
HEAD = {"hidden_dim": 32, "num_layers": 1}


@dataclass
class Case:
    name: str  # framework name
    key: str  # backbone block key
    overlay: str  # models/<overlay>.yaml (and <overlay>_tiny.yaml)
    extra: dict = field(default_factory=dict)

    def framework(self, backbone: dict | None = None, **keys) -> dict:
        block = {"init": "random", "size": "tiny", **(backbone or {})}
        return {"name": self.name, self.key: block, "action_model": dict(HEAD), **keys}

    def build(self, seed: int = 0, backbone: dict | None = None, spec: DataSpec = SPEC, **keys):
        torch.manual_seed(seed)
        return build_framework({"framework": self.framework(backbone, **keys)}, spec)


def without_actions(examples):
    return [{k: v for k, v in ex.items() if k not in ("action", "action_mask")} for ex in examples]


def check_forward_and_grads(model) -> None:
    assert_loss_reaches_every_trainable_parameter(model, synthetic_examples(SPEC, 3))
    # the unused LM head gets no gradient, so it must not be trainable (DDP); a tied one is the embedding
    head = model.vlm.hf_model.get_output_embeddings().weight
    assert not head.requires_grad or head is model.vlm.hf_model.get_input_embeddings().weight
    assert {n for n, _ in model.named_children()} == {"vlm", "action_model"}  # the learning-rate keys
    model.zero_grad()


def check_predict(model) -> None:
    model.train()
    examples = without_actions(synthetic_examples(SPEC, 3, seed=1))
    actions = model.predict_action(examples)
    assert actions.shape == (3, SPEC.action_horizon, SPEC.action_dim) and actions.dtype == np.float32
    assert np.isfinite(actions).all() and model.training  # mode restored
    np.testing.assert_array_equal(actions, model.predict_action(examples))
    # one sample alone gives what it gives inside a padded batch (instructions differ in length)
    alone = model.predict_action(examples[1:2])
    np.testing.assert_allclose(alone[0], actions[1], atol=1e-5)
    # every camera reaches the action queries: changing one camera's image changes the chunk
    for cam in range(SPEC.num_cameras):
        changed = [dict(ex, image=list(ex["image"])) for ex in examples]
        changed[0]["image"][cam] = 255 - changed[0]["image"][cam]
        moved = model.predict_action(changed)
        assert np.abs(moved[0] - actions[0]).max() > 1e-4, f"camera {cam} does not affect the actions"
        np.testing.assert_allclose(moved[1:], actions[1:], atol=1e-5)
    # and the instruction does too
    other = [dict(examples[0], lang="a completely different instruction")]
    assert np.abs(model.predict_action(other)[0] - actions[0]).max() > 1e-4


def check_joint_queries(case: Case) -> None:
    model = case.build(action_model={**HEAD, "num_action_queries": 3})
    assert model.action_model.queries.shape[0] == 3 and not model.action_model.per_step
    assert model.predict_action(without_actions(synthetic_examples(SPEC, 2))).shape == (2, 8, 7)


def check_missing_dir(case: Case, default_dir: str, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PRETRAINED_MODELS_DIR", str(tmp_path))
    (tmp_path / "some-other-model").mkdir()
    with pytest.raises(UserError, match=rf"framework\.{case.key}\.base_vlm = '{default_dir}'.*not found.*some-other-model"):
        build_framework({"framework": {"name": case.name}}, SPEC)


def check_config_errors(case: Case) -> None:
    k = case.key
    cases = [
        ({k: {"init": "random", "size": "tiny", "max_text_token": 8}}, rf'framework\.{k}\.max_text_token".*max_text_tokens'),
        ({"action_model": {"hiden_dim": 8}}, r'framework\.action_model\.hiden_dim".*hidden_dim'),
        ({k + "x": {}}, rf'framework\.{k}x".*{k}'),
        ({k: {"size": "tiny"}}, rf"needs framework\.{k}\.init = random"),
        ({"action_model": {"action_horizon": 4}}, r"action_horizon = 4 but the dataset"),
        ({"action_model": {"loss": "l3"}}, r"framework\.action_model\.loss = 'l3' is not a valid choice"),
    ]
    for framework, match in cases:
        with pytest.raises(ConfigError, match=match):
            build_framework({"framework": {"name": case.name, **framework}}, SPEC)


def check_bf16_hidden_states() -> None:
    head = OFTActionHead(vlm_dim=16, horizon=4, action_dim=3, state_dim=2, hidden_dim=8, num_layers=1)
    out = head(torch.randn(2, 4, 16, dtype=torch.bfloat16), torch.randn(2, 2))
    assert out.dtype == torch.float32 and out.shape == (2, 4, 3) and torch.isfinite(out).all()
    assert head.query_embeds(2, torch.bfloat16).dtype == torch.bfloat16


def check_overlays(case: Case, backbone_config_cls) -> None:
    from AlphaBrain.model.policies.common.configuration_oft import OFTActionModelConfig

    tiny_cfg = compose_config([CONFIG_ROOT / "models" / f"{case.overlay}_tiny.yaml"])
    spec = DataSpec(state_dim=8, action_dim=7, action_horizon=int(tiny_cfg.framework.action_model.action_horizon),
                    num_cameras=2, image_size=(64, 64))
    tiny = build_framework(tiny_cfg, spec)
    assert set(tiny_cfg.trainer.learning_rate) >= {"vlm", "action_model"} and tiny_cfg.lora.enabled
    assert tiny.vlm.config.size == "tiny"
    real = compose_config([CONFIG_ROOT / "models" / f"{case.overlay}.yaml"])
    assert getattr(real.framework, case.key).init == "pretrained" and real.lora.enabled
    assert set(real.trainer.learning_rate) >= {"vlm", "action_model"}
    backbone_config_cls.from_block(getattr(real.framework, case.key))  # every key of the real overlay is valid
    OFTActionModelConfig.from_block(real.framework.action_model)


def check_lora_step(case: Case) -> None:
    from AlphaBrain.training.trainer_utils.peft import apply_lora

    model = case.build()
    apply_lora(model, {"rank": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear"})
    model(synthetic_examples(SPEC, 2))["action_loss"].backward()
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or n.startswith("action_model.") for n in trainable)
    assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad)
    assert not any("lm_head" in n for n in trainable)  # no adapter on the unused LM head


def full_size_counts(case: Case) -> tuple[int, int]:
    spec = DataSpec(state_dim=8, action_dim=7, action_horizon=8, num_cameras=2, image_size=(224, 224))
    with torch.device("meta"):
        full = build_framework({"framework": {"name": case.name, case.key: {"init": "random", "size": "full"}}}, spec)
    vlm = sum(p.numel() for p in full.vlm.parameters())
    head = sum(p.numel() for p in full.action_model.parameters())
    frozen = sum(p.numel() for p in full.parameters() if not p.requires_grad)
    print(f"{case.name} full size: total {vlm + head:,} = vlm {vlm:,} + action_model {head:,} (frozen, unused LM head: {frozen:,})")
    return vlm, head


def save_byte_tokenizer(path, specials, after_vocab=()) -> None:
    """A tokenizer.json with the ids of `ByteTokenizer` (specials, then bytes, then after-vocab tokens)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    to_char = bytes_to_unicode()
    vocab = {s: i for i, s in enumerate(specials)}
    vocab.update({to_char[b]: len(specials) + b for b in range(256)})
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))  # no merges: one token per byte
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.add_special_tokens([*specials, *after_vocab])
    PreTrainedTokenizerFast(tokenizer_object=tok).save_pretrained(str(path))


def check_pretrained_roundtrip(case: Case, model, specials, after_vocab, monkeypatch, tmp_path) -> None:
    """A saved model directory (weights, tokenizer, preprocessor stats) loads through `init: pretrained`
    and predicts exactly what the model it was saved from predicts."""
    import json

    directory = tmp_path / "saved-vlm"
    model.vlm.hf_model.save_pretrained(str(directory))
    save_byte_tokenizer(directory, specials, after_vocab)
    mean, std = model.vlm.pixels.mean.flatten().tolist(), model.vlm.pixels.std.flatten().tolist()
    (directory / "preprocessor_config.json").write_text(json.dumps({"image_mean": mean, "image_std": std}))
    monkeypatch.setenv("PRETRAINED_MODELS_DIR", str(tmp_path))
    framework = {"name": case.name, case.key: {"base_vlm": "saved-vlm", "init": "pretrained", "dtype": "float32"},
                 "action_model": dict(HEAD)}
    loaded = build_framework({"framework": framework}, SPEC)
    assert type(loaded.vlm.tokenizer).__name__ == "HFTokenizer"
    loaded.action_model.load_state_dict(model.action_model.state_dict())
    examples = without_actions(synthetic_examples(SPEC, 2, seed=3))
    np.testing.assert_allclose(loaded.predict_action(examples), model.predict_action(examples), atol=1e-5)

"""PaliGemma (transformers `PaliGemmaForConditionalGeneration`) as a `VLMBackbone`.

SigLIP encodes each camera frame into (224/14)^2 = 256 patch features; a linear
projector maps them to the Gemma width and they *replace* 256 `<image>`
placeholder tokens at the start of the prompt, one block per camera, in camera
order (what the PaliGemma processor builds for several images):

    <image> x 256 x cameras  <bos> {instruction} \\n  [padding]  [query embeddings]

PaliGemma is a prefix-LM: the prefix (images + instruction) attends
bidirectionally, later tokens causally. Query embeddings appended by an action
head (`query_embeds`) form the suffix (token_type 1): they read the whole
prefix and the queries before them. Pitfall: the projector's output size
`projection_dim` must equal the Gemma hidden size (2048 for paligemma-3b);
`full_config` sets both from the same number and pretrained configs are checked.

The `framework.paligemma` block (`PaliGemmaConfig`) adds nothing to the common keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from transformers import PaliGemmaConfig as HFPaliGemmaConfig
from transformers import PaliGemmaForConditionalGeneration

from AlphaBrain.model.backbones.base import VLMConfig, VLMFeatures
from AlphaBrain.model.backbones.prompt import ByteTokenizer, HFTokenizer, PromptBackbone, build_hf_model, read_image_stats
from AlphaBrain.utils.errors import UserError

# Published SigLIP preprocessing of paligemma-3b-pt-224: bicubic resize to 224, then (x - 0.5) / 0.5.
SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)
IMAGE_TOKEN = "<image>"
#: the tiny tokenizer's special tokens carry the real names (ids 0, 1, 2 as in Gemma; <image> in the vocabulary).
TINY_SPECIALS = ("<pad>", "<eos>", "<bos>", IMAGE_TOKEN)


def full_config() -> HFPaliGemmaConfig:
    """The published paligemma-3b-pt-224 architecture: Gemma-2B + SigLIP so400m/14 at 224 (numbers from its config.json)."""
    width = 2048
    text = dict(
        model_type="gemma", vocab_size=257216, hidden_size=width, intermediate_size=16384, num_hidden_layers=18,
        num_attention_heads=8, num_key_value_heads=1, head_dim=256, hidden_act="gelu_pytorch_tanh",
        max_position_embeddings=8192, rms_norm_eps=1e-6, pad_token_id=0, eos_token_id=1, bos_token_id=2,
    )
    vision = dict(
        model_type="siglip_vision_model", hidden_size=1152, intermediate_size=4304, num_hidden_layers=27,
        num_attention_heads=16, patch_size=14, image_size=224, vision_use_head=False,
    )
    return HFPaliGemmaConfig(
        text_config=text, vision_config=vision, image_token_index=257152, vocab_size=257216,
        projection_dim=width, hidden_size=width, pad_token_id=0, bos_token_id=2, eos_token_id=1,
    )


def tiny_config(tokenizer: ByteTokenizer) -> HFPaliGemmaConfig:
    """A few-hundred-thousand-parameter PaliGemma (16 image tokens per camera, 2 Gemma layers)."""
    width = 64
    text = dict(
        model_type="gemma", vocab_size=tokenizer.vocab_size, hidden_size=width, intermediate_size=128,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1, head_dim=16, max_position_embeddings=512,
        pad_token_id=0, eos_token_id=1, bos_token_id=2,
    )
    vision = dict(
        model_type="siglip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, patch_size=8, image_size=32, vision_use_head=False,
    )
    return HFPaliGemmaConfig(
        text_config=text, vision_config=vision, image_token_index=tokenizer.special(IMAGE_TOKEN),
        vocab_size=tokenizer.vocab_size, projection_dim=width, hidden_size=width, pad_token_id=0, bos_token_id=2,
        eos_token_id=1,
    )


def check_projection_dim(config: HFPaliGemmaConfig, where: str) -> None:
    width = config.text_config.hidden_size
    if config.projection_dim != width or config.vision_config.projection_dim != width:
        raise UserError(
            f"{where}: projection_dim = {config.projection_dim} but the Gemma hidden size is {width}; the projector "
            "must map SigLIP features to the text width. Fix the model's config.json."
        )


class SiglipPixels:
    """Torch preprocessing equal to `SiglipImageProcessorPil` for frames already at the model's image size."""

    def __init__(self, mean: list[float], std: list[float]) -> None:
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """images [N, 3, S, S] in [0, 1] -> pixel_values [N, 3, S, S]."""
        return (images - self.mean.to(images)) / self.std.to(images)


@dataclass
class PaliGemmaConfig(VLMConfig):
    """The `framework.paligemma` block."""

    yaml_path: ClassVar[str] = "framework.paligemma"

    base_vlm: str = "paligemma-3b-pt-224"


class PaliGemmaBackbone(PromptBackbone):
    """PaliGemma: (images, instructions[, query embeddings]) -> last hidden states."""

    block_key: ClassVar[str] = "paligemma"
    config_cls: ClassVar[type[VLMConfig]] = PaliGemmaConfig

    def __init__(self, config: PaliGemmaConfig) -> None:
        super().__init__(config)
        # Random builds have no tokenizer files: byte ids (specials at Gemma's ids 0-2).
        byte_tok = ByteTokenizer(TINY_SPECIALS)
        random_cfg = None
        if config.init == "random":
            random_cfg = tiny_config(byte_tok) if config.size == "tiny" else full_config()
        self.hf_model, path = build_hf_model(PaliGemmaForConditionalGeneration, config, random_cfg)
        check_projection_dim(self.hf_model.config, str(path) if path is not None else f"{config.yaml_path} ({config.size})")
        self.tokenizer = HFTokenizer(path, f"{config.yaml_path}.base_vlm") if path is not None else byte_tok
        vc = self.hf_model.config.vision_config
        self.hidden_size = int(self.hf_model.config.text_config.hidden_size)
        self.image_size = (int(vc.image_size), int(vc.image_size))
        self.tokens_per_image = (int(vc.image_size) // int(vc.patch_size)) ** 2
        mean, std = read_image_stats(path, SIGLIP_MEAN, SIGLIP_STD)
        self.pixels = SiglipPixels(mean, std)
        self.pad_id = self.tokenizer.special("<pad>")
        self.image_id = self.tokenizer.special(IMAGE_TOKEN)
        self.bos_id = self.tokenizer.special("<bos>")
        self._newline = self.tokenizer.encode("\n")

    def prompt_ids(self, instruction: str, num_cameras: int) -> list[int]:
        text = self.tokenizer.encode(instruction)[: self.config.max_text_tokens]
        return [self.image_id] * (self.tokens_per_image * num_cameras) + [self.bos_id] + text + self._newline

    def forward(self, images: torch.Tensor, lang: list[str], query_embeds: torch.Tensor | None = None) -> VLMFeatures:
        """images [B, cams, 3, S, S] in [0, 1]; each camera is a block of image tokens leading the prompt."""
        batch, cams = images.shape[:2]
        inner, embeds, mask, positions = self.embed_prompts(images, lang, query_embeds)
        pixels = self.pixels(images.flatten(0, 1)).to(embeds.dtype)
        features = inner.get_image_features(pixels).pooler_output  # [B * cams, tokens, D], projected
        n_image = cams * self.tokens_per_image
        # The image blocks lead every prompt, so they replace the first cams x tokens placeholders of each row.
        embeds = torch.cat([features.reshape(batch, n_image, -1).to(embeds.dtype), embeds[:, n_image:]], dim=1)
        token_type = torch.zeros_like(mask)
        if query_embeds is not None:
            token_type[:, -query_embeds.shape[1]:] = 1  # the queries are the causal suffix
        out = inner(
            inputs_embeds=embeds,
            attention_mask=mask,
            position_ids=positions + 1,  # PaliGemma counts positions from 1
            token_type_ids=token_type,
            use_cache=False,
        )
        return VLMFeatures(hidden=out.last_hidden_state, mask=mask.bool())

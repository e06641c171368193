"""Llama-3.2-Vision (transformers `MllamaForConditionalGeneration`) as a `VLMBackbone`.

Unlike most VLMs, Llama-3.2-Vision does not put image patches into the token
sequence: each image is one `<|image|>` placeholder token, and the text
decoder *cross-attends* to the vision features in 8 of its 40 layers. So:

* pixels: every camera frame is one 560x560 *tile*; the model's input has room
  for `max_num_tiles` (4) tiles per image, the unused ones zero and masked out by
  `aspect_ratio_mask`; `aspect_ratio_ids` = 1 (the 1x1 arrangement);
* `cross_attention_mask` [B, T, cameras, tiles] says which tokens see which image
  tiles: every token from the first `<|image|>` on sees the real tile of every
  camera (what the processor produces for consecutive image tokens); tokens
  before it see no image (the model zeroes their cross-attention rows);
* the `<|image|>` id (128256) is one past the text vocabulary: it has an embedding
  row (the table has vocab + 8 rows) but no LM-head column, which is why image
  tokens must never be LM labels. We train no LM loss, so nothing else to do.

Prompt (the Instruct chat layout, one image token per camera, in camera order):

    <|begin_of_text|><|start_header_id|>user<|end_header_id|>\\n\\n<|image|>...<|image|>
    What action should the robot take to {instruction}?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\\n\\n

The `framework.mllama` block (`MllamaConfig`) adds nothing to the common keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from transformers import MllamaConfig as HFMllamaConfig
from transformers import MllamaForConditionalGeneration

from AlphaBrain.model.backbones.base import VLMConfig, VLMFeatures
from AlphaBrain.model.backbones.prompt import ByteTokenizer, HFTokenizer, PromptBackbone, build_hf_model, read_image_stats
from AlphaBrain.utils.errors import ConfigError, UserError

# Published Llama-3.2-11B-Vision(-Instruct) preprocessing: CLIP statistics, 560x560 tiles, up to 4 tiles.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
PROMPT = "What action should the robot take to {}?"
IMAGE_TOKEN = "<|image|>"
#: the tiny tokenizer's special tokens carry the real names, so one prompt builder serves both tokenizers.
TINY_SPECIALS = ("<|finetune_right_pad_id|>", "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")


def full_config() -> HFMllamaConfig:
    """The published Llama-3.2-11B-Vision architecture (numbers from its config.json)."""
    text = dict(
        vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=40,
        num_attention_heads=32, num_key_value_heads=8, cross_attention_layers=[3, 8, 13, 18, 23, 28, 33, 38],
        rms_norm_eps=1e-5, max_position_embeddings=131072, hidden_act="silu", tie_word_embeddings=False,
        bos_token_id=128000, eos_token_id=[128001, 128008, 128009], pad_token_id=128004,
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
    )
    vision = dict(
        hidden_size=1280, num_hidden_layers=32, num_global_layers=8, attention_heads=16, intermediate_size=5120,
        image_size=560, patch_size=14, max_num_tiles=4, intermediate_layers_indices=[3, 7, 15, 23, 30],
        supported_aspect_ratios=[[1, 1], [1, 2], [1, 3], [1, 4], [2, 1], [2, 2], [3, 1], [4, 1]],
        vision_output_dim=7680, norm_eps=1e-5, hidden_act="gelu",
    )
    return HFMllamaConfig(text_config=text, vision_config=vision, image_token_index=128256)


def tiny_config(tokenizer: ByteTokenizer) -> HFMllamaConfig:
    """A few-hundred-thousand-parameter Mllama with every feature of the real one (2 tiles, 2 cross-attn layers)."""
    text = dict(
        vocab_size=tokenizer.vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, cross_attention_layers=[1, 3], max_position_embeddings=512,
        tie_word_embeddings=False, pad_token_id=tokenizer.special(TINY_SPECIALS[0]),
        bos_token_id=tokenizer.special(TINY_SPECIALS[1]), eos_token_id=tokenizer.special(TINY_SPECIALS[4]),
        rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
    )
    vision = dict(
        hidden_size=32, num_hidden_layers=2, num_global_layers=1, attention_heads=2, intermediate_size=64,
        image_size=32, patch_size=8, max_num_tiles=2, supported_aspect_ratios=[[1, 1], [1, 2], [2, 1]],
        intermediate_layers_indices=[1], vision_output_dim=32 * 2,
    )
    return HFMllamaConfig(text_config=text, vision_config=vision, image_token_index=tokenizer.special(IMAGE_TOKEN))


def check_vision_output_dim(config: HFMllamaConfig, where: str) -> None:
    """The projector's input is the final layer + one copy per intermediate layer: a mismatch fails deep inside."""
    vc = config.vision_config
    expected = vc.hidden_size * (1 + len(vc.intermediate_layers_indices))
    if vc.vision_output_dim != expected:
        raise UserError(
            f"{where}: vision_output_dim = {vc.vision_output_dim} but hidden_size {vc.hidden_size} x "
            f"(1 + {len(vc.intermediate_layers_indices)} intermediate layers) = {expected}; fix the model's config.json."
        )


class MllamaPixels:
    """Torch preprocessing equal to `MllamaImageProcessorPil` for frames already at tile size (one tile each)."""

    def __init__(self, mean: list[float], std: list[float], max_num_tiles: int) -> None:
        self.mean = torch.tensor(mean).view(1, 1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 1, 3, 1, 1)
        self.max_num_tiles = max_num_tiles

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """images [B, cams, 3, S, S] in [0, 1] -> pixel_values [B, cams, tiles, 3, S, S], aspect_ratio_ids, _mask."""
        b, cams = images.shape[:2]
        x = (images - self.mean.to(images)) / self.std.to(images)
        # The processor packs each image's tiles into max_num_tiles slots and leaves the rest zero.
        pixels = x.new_zeros(b, cams, self.max_num_tiles, *x.shape[2:])
        pixels[:, :, 0] = x
        ratio_ids = torch.ones(b, cams, dtype=torch.long, device=images.device)  # id 1 = the 1x1 arrangement
        ratio_mask = torch.zeros(b, cams, self.max_num_tiles, dtype=torch.long, device=images.device)
        ratio_mask[:, :, 0] = 1
        return pixels, ratio_ids, ratio_mask


@dataclass
class MllamaConfig(VLMConfig):
    """The `framework.mllama` block."""

    yaml_path: ClassVar[str] = "framework.mllama"

    base_vlm: str = "Llama-3.2-11B-Vision-Instruct"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.attn_implementation == "flash_attention_2":
            raise ConfigError(
                f"{self._where('attn_implementation')} = flash_attention_2 is not supported by Llama-3.2-Vision "
                "in transformers (it builds 4-D cross-attention masks); use sdpa or eager."
            )


class MllamaBackbone(PromptBackbone):
    """Llama-3.2-Vision: (images, instructions[, query embeddings]) -> last hidden states."""

    block_key: ClassVar[str] = "mllama"
    config_cls: ClassVar[type[VLMConfig]] = MllamaConfig

    def __init__(self, config: MllamaConfig) -> None:
        super().__init__(config)
        tiny = config.size == "tiny"
        # Random builds have no tokenizer files: byte ids (the full size keeps the real image-token id).
        byte_tok = ByteTokenizer(TINY_SPECIALS, after_vocab=(IMAGE_TOKEN,), after_vocab_start=None if tiny else 128256)
        random_cfg = None
        if config.init == "random":
            random_cfg = tiny_config(byte_tok) if tiny else full_config()
            check_vision_output_dim(random_cfg, f"{config.yaml_path} (size {config.size})")
        self.hf_model, path = build_hf_model(MllamaForConditionalGeneration, config, random_cfg)
        if path is not None:
            check_vision_output_dim(self.hf_model.config, str(path))
        if config.init == "random":
            # The published init zeroes the tanh gates of the cross-attention layers and of the tile
            # embeddings (the released weights open them): a from-scratch model with closed gates would
            # ignore the image and give those weights zero gradient at first. Open them half-way.
            with torch.no_grad():
                for name, param in self.hf_model.named_parameters():
                    if name.endswith(("cross_attn_attn_gate", "cross_attn_mlp_gate", "embedding.gate")):
                        param.fill_(0.5)
        self.tokenizer = HFTokenizer(path, f"{config.yaml_path}.base_vlm") if path is not None else byte_tok
        vc = self.hf_model.config.vision_config
        self.hidden_size = int(self.hf_model.config.text_config.hidden_size)
        self.image_size = (int(vc.image_size), int(vc.image_size))
        mean, std = read_image_stats(path, CLIP_MEAN, CLIP_STD)
        self.pixels = MllamaPixels(mean, std, int(vc.max_num_tiles))
        tok = self.tokenizer
        self.pad_id = tok.special("<|finetune_right_pad_id|>")
        self.image_id = tok.special(IMAGE_TOKEN)
        header = [tok.special("<|start_header_id|>")]
        end_header = [tok.special("<|end_header_id|>")] + tok.encode("\n\n")
        self._head = [tok.special("<|begin_of_text|>")] + header + tok.encode("user") + end_header
        self._tail = [tok.special("<|eot_id|>")] + header + tok.encode("assistant") + end_header

    def prompt_ids(self, instruction: str, num_cameras: int) -> list[int]:
        text = self.tokenizer.encode(PROMPT.format(instruction))[: self.config.max_text_tokens]
        return self._head + [self.image_id] * num_cameras + text + self._tail

    def forward(self, images: torch.Tensor, lang: list[str], query_embeds: torch.Tensor | None = None) -> VLMFeatures:
        """images [B, cams, 3, S, S] in [0, 1]; each camera is one `<|image|>` token, read by cross-attention."""
        batch, cams = images.shape[:2]
        inner, embeds, mask, positions = self.embed_prompts(images, lang, query_embeds)
        pixels, ratio_ids, ratio_mask = self.pixels(images)
        # Every real token from the first <|image|> on sees the real tile of every camera; padding sees none.
        first_image = len(self._head)
        sees = mask.bool().clone()
        sees[:, :first_image] = False
        cross = torch.zeros(batch, sees.shape[1], cams, self.pixels.max_num_tiles, dtype=torch.long, device=images.device)
        cross[..., 0] = sees.long().unsqueeze(-1)
        out = inner(
            inputs_embeds=embeds,
            pixel_values=pixels.to(embeds.dtype),
            aspect_ratio_ids=ratio_ids,
            aspect_ratio_mask=ratio_mask,
            attention_mask=mask,
            cross_attention_mask=cross,
            position_ids=positions,
            use_cache=False,
        )
        return VLMFeatures(hidden=out.last_hidden_state, mask=mask.bool())

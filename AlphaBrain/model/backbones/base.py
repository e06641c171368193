"""The contract between a VLM backbone and the action heads of the large policies.

    images [B, cams, 3, H, W] float in [0, 1]  +  instructions list[str]
        --VLMBackbone-->  VLMFeatures(hidden [B, L, D], mask [B, L] bool)

A backbone owns everything model-specific: its tokenizer, the prompt layout
(image tokens, chat template), the pixel preprocessing and the Hugging Face
module. Heads only see `hidden` (the last hidden states) and `mask` (True on
real tokens, False on padding), so any head works on any backbone.

How a backbone is built is chosen by its config block (`VLMConfig`):

    init: pretrained   weights from PRETRAINED_MODELS_DIR/<base_vlm>, local files only (real runs)
    init: random       the architecture of `size` with random weights, no files needed
                       (tests, benchmarks, parameter counts on the meta device)
    size: full | tiny  the published architecture, or a few-hundred-thousand-parameter one for CPU tests

LoRA (AlphaBrain/model/lora.py) adapts the backbone's
`hf_model`; the heads stay fully trainable.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn as nn

from AlphaBrain.model.core.config import BlockConfig
from AlphaBrain.utils.errors import ConfigError, UserError

PRETRAINED_ENV = "PRETRAINED_MODELS_DIR"
ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2")
DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class VLMFeatures:
    hidden: torch.Tensor  # [B, L, D] last hidden states of the language model
    mask: torch.Tensor  # [B, L] bool, True on real (non-padding) tokens


@dataclass
class VLMConfig(BlockConfig):
    """Common keys of every backbone block (`framework.qwenvl`, `framework.mllama`, `framework.paligemma`).

    A backbone subclass sets `yaml_path` and `default_base_vlm`, and may add keys.
    """

    yaml_path: ClassVar[str] = "framework.vlm"

    base_vlm: str = ""  # directory name under PRETRAINED_MODELS_DIR (or an absolute path)
    init: str = "pretrained"  # pretrained | random
    size: str = "full"  # full | tiny (only with init: random)
    attn_implementation: str = "sdpa"  # sdpa | eager | flash_attention_2
    gradient_checkpointing: bool = False
    dtype: str = "float32"  # weights' dtype at load; bf16 training on GPU uses trainer.mixed_precision
    max_text_tokens: int = 64  # instruction tokens kept (the rest is cut)

    INITS: ClassVar[tuple[str, ...]] = ("pretrained", "random")
    SIZES: ClassVar[tuple[str, ...]] = ("full", "tiny")

    def __post_init__(self) -> None:
        self.check_choice("init", self.INITS)
        self.check_choice("size", self.SIZES)
        self.check_choice("attn_implementation", ATTN_IMPLEMENTATIONS)
        self.check_bool("gradient_checkpointing")
        self.check_choice("dtype", DTYPES)
        self.check_int("max_text_tokens", 4, 4096)
        self.require(isinstance(self.base_vlm, str), "base_vlm", "must be a directory name.")
        self.require(
            self.init != "pretrained" or self.size == "full", "size",
            f"needs {self._where('init')} = random: pretrained weights exist only for the full-size architecture.",
        )
        if self.init == "pretrained" and not self.base_vlm:
            raise ConfigError(f"{self._where('base_vlm')} is empty; name the model directory under ${PRETRAINED_ENV}.")

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)


def pretrained_dir(base_vlm: str, yaml_key: str) -> Path:
    """`$PRETRAINED_MODELS_DIR/<base_vlm>` (or `base_vlm` itself when absolute); UserError if it is not there."""
    path = Path(base_vlm).expanduser()
    if not path.is_absolute():
        root = os.environ.get(PRETRAINED_ENV, "").strip()
        if not root:
            raise UserError(
                f"{yaml_key} = {base_vlm!r} is a pretrained model directory name but ${PRETRAINED_ENV} is not set. "
                f"Set it (e.g. in .env) to the folder holding {base_vlm}/, or set {yaml_key} to an absolute path."
            )
        path = Path(root).expanduser() / base_vlm
    if not path.is_dir():
        parent = path.parent
        there = sorted(p.name for p in parent.iterdir() if p.is_dir())[:12] if parent.is_dir() else []
        listing = f" It holds: {', '.join(there)}." if there else (" That folder does not exist." if not parent.is_dir() else "")
        raise UserError(
            f"Pretrained weights for {yaml_key} = {base_vlm!r} not found: expected the directory {path}.{listing} "
            f"Download the model there (nothing is downloaded at run time), or point ${PRETRAINED_ENV} at the right folder."
        )
    if not (path / "config.json").is_file():
        raise UserError(f"{path} has no config.json: it is not a Hugging Face model directory ({yaml_key} = {base_vlm!r}).")
    return path


def enable_activation_checkpointing(hf_model: nn.Module) -> None:
    """Recompute the model's activations in backward (training mode only; evaluation is unaffected).

    transformers 5 renamed gradient_checkpointing_enable to activation_checkpointing_enable
    (the old name warns); both take the non-reentrant variant, which works with frozen inputs (LoRA).
    """
    enable = getattr(hf_model, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:  # transformers 4.x
        hf_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


class VLMBackbone(nn.Module, abc.ABC):
    """A Hugging Face VLM that turns (images, instructions) into last hidden states.

    Subclasses set `block_key`, `config_cls`, `hf_model` (the transformers module:
    the LoRA target and what a checkpoint stores), `hidden_size`, `image_size`,
    and implement `forward`.
    """

    #: the framework YAML key of this backbone's block, e.g. "qwenvl".
    block_key: ClassVar[str] = ""
    #: the dataclass of that block.
    config_cls: ClassVar[type[VLMConfig]] = VLMConfig
    hf_model: nn.Module
    hidden_size: int
    image_size: tuple[int, int]  # (H, W) every camera frame is resized to before preprocessing

    def __init__(self, config: VLMConfig) -> None:
        super().__init__()
        self.config = config

    @classmethod
    def from_block(cls, block: Any) -> "VLMBackbone":
        """Build from the framework's backbone block (a mapping, or None for the defaults)."""
        return cls(cls.config_cls.from_block(block))

    @abc.abstractmethod
    def forward(self, images: torch.Tensor, lang: list[str]) -> VLMFeatures:
        """images [B, cams, 3, H, W] in [0, 1] on the backbone's device, one instruction per sample.

        Backbones used by the OFT heads (Mllama, PaliGemma) also take `query_embeds`
        [B, Q, D]: learned action queries appended after the prompt, whose hidden
        states are the last Q positions of `hidden`.
        """

    def identity(self) -> dict[str, Any]:
        """What a LoRA adapter was trained on: the class and the architecture config (not the weights).

        Saved next to every adapter and compared on load, so an adapter is never
        merged into a different base.
        """
        hf_config = self.hf_model.config.to_dict()
        for volatile in ("_name_or_path", "transformers_version", "torch_dtype", "dtype", "_attn_implementation_autoset",
                         "attn_implementation", "_attn_implementation"):
            hf_config.pop(volatile, None)
        digest = hashlib.sha256(json.dumps(hf_config, sort_keys=True, default=str).encode()).hexdigest()[:16]
        return {
            "backbone": type(self).__name__,
            "model_type": getattr(self.hf_model.config, "model_type", "?"),
            "base_vlm": self.config.base_vlm,
            "size": self.config.size,
            "config_sha": digest,
        }

    def block_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

"""LoRA helpers: apply_lora, save_lora_checkpoint, load_and_merge.

LoRA adapts the VLM backbone of the large architectures (QwenGR00T, NeuroVLA,
LlamaOFT, PaliGemmaOFT). Until those land, the small CPU model has no backbone
to adapt, so asking for LoRA is a clear configuration error, not a silent
full-parameter run.
"""

from __future__ import annotations

from typing import Any

from AlphaBrain.utils.errors import ConfigError


def apply_lora(model: Any, lora_cfg: Any) -> Any:
    raise ConfigError(
        f"lora.enabled=true is not available for {type(model).__name__}: it has no VLM backbone to adapt. "
        "Set lora.enabled=false (pass -- lora.enabled=false) to train all parameters."
    )


def save_lora_checkpoint(*args: Any, **kwargs: Any) -> None:
    raise ConfigError("LoRA checkpoints need a LoRA-enabled model (see apply_lora).")

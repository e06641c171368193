"""LoRA on a framework's VLM backbone: the `lora:` block, injection, and merging back.

Adapters are injected in place (`peft.inject_adapter_in_model`) into the
module a framework names as its `lora_target` (the transformers model inside
its backbone), so the framework's own code calls the same modules before and
after: each adapted `nn.Linear` becomes a peft LoRA layer wrapping it. Only the
LoRA matrices of that module train; every other child of the framework (action
head, Q-Former, ...) stays fully trainable.

`merge_lora` folds the adapters into the base weights and puts the plain
layers back, so a merged model has exactly the state-dict keys of a
full-parameter model of the same config.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from AlphaBrain.model.core.config import to_plain
from AlphaBrain.utils.errors import ConfigError, did_you_mean

#: peft's shorthand for "every linear layer except the output head".
ALL_LINEAR = "all-linear"
#: the keys of the `lora:` block.
LORA_KEYS = ("enabled", "rank", "alpha", "dropout", "target_modules")


@dataclass(frozen=True)
class LoraSettings:
    """The validated `lora:` block."""

    rank: int = 32
    alpha: float = 32.0
    dropout: float = 0.05
    target_modules: str | tuple[str, ...] = ALL_LINEAR

    @classmethod
    def from_block(cls, block: Any) -> "LoraSettings":
        block = to_plain(block) or {}
        if not isinstance(block, Mapping):
            raise ConfigError(f"lora must be a mapping with keys {', '.join(LORA_KEYS)}; got {block!r}.")
        for key in block:
            if key not in LORA_KEYS:
                raise ConfigError(
                    f'Unknown key "lora.{key}".{did_you_mean(str(key), LORA_KEYS)} Valid keys: {", ".join(LORA_KEYS)}.'
                )
        rank = block.get("rank", cls.rank)
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise ConfigError(f"lora.rank = {rank!r} must be a positive integer (e.g. 32).")
        alpha = block.get("alpha", cls.alpha)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha <= 0:
            raise ConfigError(f"lora.alpha = {alpha!r} must be a positive number (the scale is alpha / rank).")
        dropout = block.get("dropout", cls.dropout)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ConfigError(f"lora.dropout = {dropout!r} must be a number in [0, 1).")
        targets = _targets(block.get("target_modules", ALL_LINEAR))
        return cls(rank=rank, alpha=float(alpha), dropout=float(dropout), target_modules=targets)

    def peft_config(self):
        from peft import LoraConfig

        targets = self.target_modules if isinstance(self.target_modules, str) else list(self.target_modules)
        return LoraConfig(r=self.rank, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=targets, bias="none")

    def to_dict(self) -> dict[str, Any]:
        targets = self.target_modules if isinstance(self.target_modules, str) else list(self.target_modules)
        return {"rank": self.rank, "alpha": self.alpha, "dropout": self.dropout, "target_modules": targets}


def _targets(value: Any) -> str | tuple[str, ...]:
    """`all-linear`, a regex string (full match on module paths, as peft does), or a list of name suffixes."""
    value = to_plain(value)
    if isinstance(value, str):
        if value != ALL_LINEAR:
            try:
                re.compile(value)
            except re.error as exc:
                raise ConfigError(f"lora.target_modules = {value!r} is not a valid regular expression ({exc}).") from None
        return value
    if isinstance(value, Sequence) and value and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise ConfigError(
        f"lora.target_modules = {value!r}: use {ALL_LINEAR!r}, a regex over module paths, or a list of module "
        "names such as [q_proj, k_proj, v_proj, o_proj]."
    )


def lora_target(model: nn.Module) -> nn.Module:
    """The module of `model` that LoRA adapts; ConfigError for a framework without a VLM backbone."""
    target = getattr(model, "lora_target", None)
    if not isinstance(target, nn.Module):
        raise ConfigError(
            f"lora.enabled=true is not available for {type(model).__name__}: it has no VLM backbone to adapt. "
            "Set lora.enabled=false (pass -- --lora.enabled=false) to train all parameters."
        )
    return target


def is_lora_model(model: nn.Module) -> bool:
    from peft.tuners.lora import LoraLayer

    return any(isinstance(m, LoraLayer) for m in model.modules())


def apply_lora(model: nn.Module, lora_cfg: Any) -> nn.Module:
    """Inject LoRA adapters into `model.lora_target` and freeze that module's base weights; returns `model`.

    The rest of the model (action head, Q-Former, ...) keeps `requires_grad` as
    it was: fully trainable. A target list that matches no module is a
    ConfigError naming some of the linear layers that exist.
    """
    settings = lora_cfg if isinstance(lora_cfg, LoraSettings) else LoraSettings.from_block(_without_enabled(lora_cfg))
    target = lora_target(model)
    if is_lora_model(target):
        raise ConfigError("LoRA is already applied to this model; apply_lora must be called once.")
    from peft import inject_adapter_in_model

    for p in target.parameters():
        p.requires_grad_(False)
    try:
        inject_adapter_in_model(settings.peft_config(), target)
    except ValueError as exc:  # peft: "Target modules ... not found in the base model"
        linear = sorted({name.rsplit(".", 1)[-1] for name, m in target.named_modules() if isinstance(m, nn.Linear)})
        raise ConfigError(
            f"lora.target_modules = {settings.to_dict()['target_modules']!r} matches no layer of "
            f"{type(target).__name__} ({str(exc).splitlines()[0][:160]}). Linear layer names there: {', '.join(linear[:20])}."
        ) from None
    for name, p in target.named_parameters():
        p.requires_grad_("lora_" in name)
    model.lora_settings = settings  # saved with the adapter
    return model


def _without_enabled(block: Any) -> dict:
    block = dict(to_plain(block) or {})
    block.pop("enabled", None)
    return block


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The LoRA matrices of `model.lora_target`, keyed as peft saves them (relative to the target)."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(lora_target(model)).items()}


def load_adapter_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Put saved LoRA matrices into an injected model; every LoRA matrix must be covered."""
    from peft import set_peft_model_state_dict

    target = lora_target(model)
    result = set_peft_model_state_dict(target, dict(state))
    missing = [k for k in result.missing_keys if "lora_" in k]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"adapter does not fit the model: {len(missing)} LoRA matrices missing (e.g. {missing[:2]}), "
            f"{len(result.unexpected_keys)} unexpected (e.g. {list(result.unexpected_keys)[:2]})"
        )


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight and restore the plain layers (in place); returns `model`."""
    from peft.tuners.lora import LoraLayer

    target = lora_target(model)
    layers = [(name, m) for name, m in target.named_modules() if isinstance(m, LoraLayer)]
    for name, layer in layers:
        layer.merge()
        parent_name, _, child = name.rpartition(".")
        parent = target.get_submodule(parent_name) if parent_name else target
        setattr(parent, child, layer.get_base_layer())
    return model

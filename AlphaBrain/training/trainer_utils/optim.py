"""Optimizer with per-module learning rates, and the per-task LR schedule.

`trainer.learning_rate` maps top-level child modules of the policy to learning
rates (`base` covers every module without its own entry), so a VLM backbone can
train at 1e-5 while its action head trains at 1e-4.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from omegaconf import DictConfig, OmegaConf

from AlphaBrain.utils.errors import ConfigError, did_you_mean

SCHEDULERS = ("cosine_with_min_lr", "cosine", "linear", "constant", "constant_with_warmup")


def param_groups(model: torch.nn.Module, lr_cfg: Any, weight_decay: float) -> list[dict]:
    lrs = dict(OmegaConf.to_container(lr_cfg) if isinstance(lr_cfg, DictConfig) else lr_cfg)
    if "base" not in lrs:
        raise ConfigError("trainer.learning_rate.base must be set (the learning rate of every other module).")
    children = dict(model.named_children())
    for name in lrs:
        if name != "base" and name not in children:
            raise ConfigError(
                f'trainer.learning_rate.{name}: the model has no top-level module "{name}".'
                f"{did_you_mean(name, children)} Modules: {', '.join(sorted(children))} (or base)."
            )
    groups: dict[str, list] = {}
    for child_name, child in children.items():
        key = child_name if child_name in lrs else "base"
        groups.setdefault(key, []).extend(p for p in child.parameters() if p.requires_grad)
    # Parameters registered directly on the model, not in a child module.
    groups.setdefault("base", []).extend(p for p in model.parameters(recurse=False) if p.requires_grad)
    out = []
    for key, params in groups.items():
        if params:
            lr = float(lrs[key])
            if lr < 0:
                raise ConfigError(f"trainer.learning_rate.{key} must be >= 0, got {lr}.")
            out.append({"params": params, "lr": lr, "initial_lr": lr, "name": key, "weight_decay": weight_decay})
    if not out:
        raise ConfigError("The model has no trainable parameters (everything is frozen).")
    return out


def build_optimizer(model: torch.nn.Module, trainer_cfg: DictConfig) -> torch.optim.Optimizer:
    opt = trainer_cfg.optimizer
    name = str(opt.get("name", "AdamW"))
    if name.lower() != "adamw":
        raise ConfigError(f'trainer.optimizer.name "{name}" is not supported; use AdamW.')
    groups = param_groups(model, trainer_cfg.learning_rate, float(opt.get("weight_decay", 0.0)))
    return torch.optim.AdamW(groups, betas=tuple(opt.get("betas", (0.9, 0.999))), eps=float(opt.get("eps", 1e-8)))


def lr_factor(kind: str, warmup: int, total: int, min_ratio: float) -> Callable[[int], float]:
    """Multiplier of a group's initial LR at optimizer step `s` (0-based)."""

    def factor(step: int) -> float:
        if warmup > 0 and step < warmup and kind != "constant":
            return (step + 1) / warmup
        if kind in ("constant", "constant_with_warmup"):
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if kind == "linear":
            return max(0.0, 1.0 - progress)
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return min_ratio + (1.0 - min_ratio) * cosine if kind == "cosine_with_min_lr" else cosine

    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, trainer_cfg: DictConfig, total_steps: int):
    """Warmup + decay over one task's `total_steps`; rebuilt at every task start."""
    kind = str(trainer_cfg.lr_scheduler_type)
    if kind not in SCHEDULERS:
        raise ConfigError(
            f'Unknown trainer.lr_scheduler_type "{kind}".{did_you_mean(kind, SCHEDULERS)} Valid: {", ".join(SCHEDULERS)}.'
        )
    ratio = float(trainer_cfg.warmup_ratio)
    if not 0.0 <= ratio < 1.0:
        raise ConfigError(f"trainer.warmup_ratio must be in [0, 1), got {ratio}.")
    warmup = int(round(ratio * total_steps))
    kwargs = dict(trainer_cfg.get("scheduler_specific_kwargs") or {})
    for key in kwargs:
        if key != "min_lr":
            raise ConfigError(
                f'Unknown key "trainer.scheduler_specific_kwargs.{key}".{did_you_mean(key, ["min_lr"])} Valid keys: min_lr.'
            )
    min_lr = float(kwargs.get("min_lr", 0.0))
    lambdas = []
    for group in optimizer.param_groups:
        base = group["initial_lr"]
        lambdas.append(lr_factor(kind, warmup, total_steps, min(1.0, min_lr / base) if base > 0 else 0.0))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)

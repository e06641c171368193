"""LoRA task checkpoints of a run: write, resume from, and merge into a full model.

A LoRA task checkpoint is (DESIGN.md, "Checkpoints"):

    task_<k>_id<k>_steps_<N>_lora_adapter/     adapter_config.json + adapter_model.safetensors (peft's format,
                                               keys prefixed "base_model.model." as PeftModel saves them)
                                               + alphabrain_lora.json (framework, backbone identity, LoRA settings)
    task_<k>_id<k>_steps_<N>_action_model.pt   every weight outside the adapted VLM (action head, Q-Former, ...)
    task_<k>_id<k>_steps_<N>_cl_state.json     written last: marks the checkpoint complete

The frozen base weights are not copied per task. A backbone loaded with
`init: pretrained` is re-read from PRETRAINED_MODELS_DIR; a randomly initialized
one (tiny configs, benchmarks) is saved once per run as
`checkpoints/lora_base_weights.safetensors`, since nothing else could rebuild it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
import torch.nn as nn

from AlphaBrain.model.lora import (
    LoraSettings,
    adapter_state_dict,
    apply_lora,
    load_adapter_state_dict,
    lora_target,
    merge_lora,
)
from AlphaBrain.runs.checkpoints import save_cl_tensors, write_state_marker
from AlphaBrain.runs.layout import (
    ACTION_MODEL_SUFFIX,
    BASE_WEIGHTS_FILE,
    LORA_DIR_SUFFIX as ADAPTER_DIR_SUFFIX,
)
from AlphaBrain.utils.atomic_io import atomic_path
from AlphaBrain.utils.errors import UserError

IDENTITY_FILE = "alphabrain_lora.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."


# ----------------------------------------------------------------------------------------- identity
def lora_identity(model: nn.Module) -> dict[str, Any]:
    """What an adapter belongs to: the framework class and its backbone's architecture (not its weights)."""
    vlm = getattr(model, "vlm", None)
    backbone = vlm.identity() if vlm is not None and hasattr(vlm, "identity") else {"backbone": type(lora_target(model)).__name__}
    return {"framework": type(model).__name__, **backbone}


def _random_base(model: nn.Module) -> bool:
    vlm = getattr(model, "vlm", None)
    return getattr(getattr(vlm, "config", None), "init", "pretrained") == "random"


def _non_target_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every state entry outside the LoRA target: what action_model.pt stores."""
    target_prefix = _target_prefix(model)
    return {k: v.detach().cpu() for k, v in model.state_dict().items() if not k.startswith(target_prefix)}


def _target_prefix(model: nn.Module) -> str:
    target = lora_target(model)
    for name, module in model.named_modules():
        if module is target:
            return f"{name}."
    raise RuntimeError("lora_target is not a submodule of the model")


def _base_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The frozen base weights of the target, with the plain (un-injected) key names."""
    out = {}
    for k, v in lora_target(model).state_dict().items():
        if "lora_" in k:
            continue
        out[k.replace(".base_layer.", ".")] = v.detach().cpu().clone()  # clone: tied weights share storage
    return out


# ------------------------------------------------------------------------------------------- saving
def save_lora_checkpoint(
    model: nn.Module,
    ckpt_dir: str | Path,
    prefix: str,
    cl_state: dict,
    cl_tensors: Optional[dict] = None,
    extra_files: Sequence[str] = (),
) -> Path:
    """Write the adapter dir, `<prefix>_action_model.pt`, algorithm tensors, then `<prefix>_cl_state.json`.

    `extra_files` are listed in the marker as part of the checkpoint (see `save_full_checkpoint`).
    Each piece is written under a temporary name and renamed into place; the
    JSON marker comes last, so an interrupted save is ignored by resume.
    """
    from safetensors.torch import save_file

    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    files: list[str] = []
    if _random_base(model):
        base_file = ckpt_dir / BASE_WEIGHTS_FILE
        if not base_file.exists():
            with atomic_path(base_file) as tmp:
                save_file(_base_state(model), str(tmp))
        files.append(BASE_WEIGHTS_FILE)

    adapter_dir = ckpt_dir / f"{prefix}{ADAPTER_DIR_SUFFIX}"
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{adapter_dir.name}.", dir=ckpt_dir))
    try:
        settings: LoraSettings = getattr(model, "lora_settings", None) or LoraSettings()
        config = settings.peft_config()
        vlm_config = getattr(getattr(model, "vlm", None), "config", None)
        config.base_model_name_or_path = getattr(vlm_config, "base_vlm", None) or None
        config.save_pretrained(str(tmp_dir))
        weights = {f"{PEFT_PREFIX}{k}": v for k, v in adapter_state_dict(model).items()}
        save_file(weights, str(tmp_dir / ADAPTER_WEIGHTS), metadata={"format": "pt"})
        identity = {"identity": lora_identity(model), "lora": settings.to_dict(), "random_base": _random_base(model)}
        (tmp_dir / IDENTITY_FILE).write_text(json.dumps(identity, indent=2))
        if adapter_dir.exists():  # a stale copy from an interrupted earlier save of the same step
            shutil.rmtree(adapter_dir)
        os.replace(tmp_dir, adapter_dir)
    finally:
        if tmp_dir.exists():
            shutil.rmtree(tmp_dir, ignore_errors=True)
    files.append(adapter_dir.name)

    with atomic_path(ckpt_dir / f"{prefix}{ACTION_MODEL_SUFFIX}") as tmp:
        torch.save(_non_target_state(model), tmp)
    files.append(f"{prefix}{ACTION_MODEL_SUFFIX}")
    files += save_cl_tensors(ckpt_dir, prefix, cl_tensors)
    files += list(extra_files)
    write_state_marker(ckpt_dir, prefix, cl_state, files, lora=True)
    return ckpt_dir / prefix


# ------------------------------------------------------------------------------------------ loading
def read_adapter(adapter_dir: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(alphabrain_lora.json contents, LoRA matrices keyed relative to the target); UserError if unreadable."""
    from safetensors.torch import load_file

    adapter_dir = Path(adapter_dir)
    meta_file, weights_file = adapter_dir / IDENTITY_FILE, adapter_dir / ADAPTER_WEIGHTS
    if not weights_file.is_file():
        raise UserError(f"{adapter_dir} is not a LoRA adapter directory (no {ADAPTER_WEIGHTS}).")
    try:
        meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
        weights = load_file(str(weights_file))
    except Exception as exc:  # truncated or foreign files
        raise UserError(f"Cannot read the LoRA adapter {adapter_dir}: {exc}") from None
    weights = {k[len(PEFT_PREFIX):] if k.startswith(PEFT_PREFIX) else k: v for k, v in weights.items()}
    return meta, weights


def check_identity(model: nn.Module, meta: dict, where: Path) -> None:
    """UserError when the adapter was trained on another framework or another backbone architecture."""
    saved = meta.get("identity")
    if not saved:
        return  # an adapter written by plain peft: nothing to compare, the key check below still applies
    current = lora_identity(model)
    diffs = [f"{k}: adapter {saved.get(k)!r} vs model {current.get(k)!r}"
             for k in ("framework", "backbone", "model_type", "config_sha") if saved.get(k) != current.get(k)]
    if diffs:
        raise UserError(
            f"The LoRA adapter {where} belongs to a different base model ({'; '.join(diffs)}). "
            "Evaluate it with the config of the run that trained it (its config.yaml)."
        )


def _load_base_weights(model: nn.Module, ckpt_dir: Path) -> None:
    from safetensors.torch import load_file

    path = ckpt_dir / BASE_WEIGHTS_FILE
    if not path.is_file():
        raise UserError(
            f"{ckpt_dir} holds LoRA adapters trained on a randomly initialized backbone, but its base weights "
            f"{BASE_WEIGHTS_FILE} are missing; without them the adapters cannot be used."
        )
    target = lora_target(model)
    state = load_file(str(path))
    if any(".base_layer." in k for k in target.state_dict()):
        state = _to_injected_names(target, state)
    missing, unexpected = target.load_state_dict(state, strict=False)
    missing = [k for k in missing if "lora_" not in k]
    if missing or unexpected:
        raise UserError(f"{path} does not fit this model's backbone ({len(missing)} missing, {len(unexpected)} unexpected keys).")


def _to_injected_names(target: nn.Module, state: dict) -> dict:
    """Plain layer keys -> the `.base_layer.` keys of an injected model."""
    injected = set(target.state_dict())
    out = {}
    for k, v in state.items():
        stem, _, leaf = k.rpartition(".")
        alt = f"{stem}.base_layer.{leaf}"
        out[alt if alt in injected and k not in injected else k] = v
    return out


def _load_action_model(model: nn.Module, path: Path) -> None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"Cannot load {path}: {exc}") from None
    prefix = _target_prefix(model)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(prefix)]
    if missing or unexpected:
        raise UserError(
            f"{path.name} does not fit {type(model).__name__}: missing {missing[:3]}, unexpected {list(unexpected)[:3]}. "
            "Was it written by a run of another architecture?"
        )


def restore_lora_checkpoint(model: nn.Module, prefix: str | Path) -> None:
    """Resume: load a LoRA task checkpoint into a model that `apply_lora` already injected."""
    prefix = Path(prefix)
    meta, weights = read_adapter(Path(f"{prefix}{ADAPTER_DIR_SUFFIX}"))
    check_identity(model, meta, Path(f"{prefix}{ADAPTER_DIR_SUFFIX}"))
    if meta.get("random_base"):
        _load_base_weights(model, prefix.parent)
    try:
        load_adapter_state_dict(model, weights)
    except ValueError as exc:
        raise UserError(f"Cannot resume from {prefix.name}: {exc}. Resume with the run's own lora settings.") from None
    _load_action_model(model, Path(f"{prefix}{ACTION_MODEL_SUFFIX}"))


def load_and_merge(model: nn.Module, adapter_dir: str | Path, action_model_file: str | Path | None = None,
                   merge: bool = True) -> nn.Module:
    """Merge a saved adapter (and its action model) into a freshly built base model, in memory.

    `model` is the framework built from the run's config with LoRA off. The
    adapter's identity is checked first, then the adapter is injected with its
    saved settings, loaded, merged into the base weights and removed, and the
    non-VLM weights are loaded. Returns `model`, now a plain full-parameter
    model whose outputs equal the adapted one's. With `merge=False` the adapter
    stays injected (parameter names as in training).
    """
    adapter_dir = Path(adapter_dir)
    meta, weights = read_adapter(adapter_dir)
    check_identity(model, meta, adapter_dir)
    if meta.get("random_base"):
        _load_base_weights(model, adapter_dir.parent)
    settings = LoraSettings.from_block(meta.get("lora") or _peft_settings(adapter_dir))
    apply_lora(model, settings)
    try:
        load_adapter_state_dict(model, weights)
    except ValueError as exc:
        raise UserError(f"The LoRA adapter {adapter_dir} does not fit this base model: {exc}.") from None
    if action_model_file is None:
        action_model_file = adapter_dir.parent / (adapter_dir.name[: -len(ADAPTER_DIR_SUFFIX)] + ACTION_MODEL_SUFFIX)
    if merge:  # else kept injected: per-task adapters are swapped in by name (model/task_conditioning.py)
        merge_lora(model)
        for p in model.parameters():
            p.requires_grad_(True)
        del model.lora_settings
    _load_action_model(model, Path(action_model_file))
    return model


def _peft_settings(adapter_dir: Path) -> dict:
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    return {"rank": config["r"], "alpha": config["lora_alpha"], "dropout": config.get("lora_dropout", 0.0),
            "target_modules": config["target_modules"]}

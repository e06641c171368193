"""LoRA helpers: inject adapters into a framework's VLM, save/restore LoRA task checkpoints, merge them.

    apply_lora(model, cfg.lora)                   inject LoRA into model.lora_target; the head stays trainable
    save_lora_checkpoint(model, dir, prefix, ...) <prefix>_lora_adapter/ + <prefix>_action_model.pt + _cl_state.json
    restore_lora_checkpoint(model, prefix)        resume a LoRA run (model already injected)
    load_and_merge(model, adapter_dir)            base model + adapter -> plain full model, in memory
    python -m AlphaBrain.training.trainer_utils.peft.merge_lora_checkpoint --run-dir ...   merged files on disk

This is the seeds' import path. The code lives where its layer is: injection and merging are model
operations (`AlphaBrain.model.lora`), checkpoint files belong to the run directory
(`AlphaBrain.runs.lora_checkpoint`).
"""

from AlphaBrain.model.lora import LoraSettings, apply_lora, is_lora_model, merge_lora
from AlphaBrain.runs.layout import ACTION_MODEL_SUFFIX, BASE_WEIGHTS_FILE, MERGED_SUFFIX
from AlphaBrain.runs.layout import LORA_DIR_SUFFIX as ADAPTER_DIR_SUFFIX
from AlphaBrain.runs.lora_checkpoint import load_and_merge, restore_lora_checkpoint, save_lora_checkpoint

__all__ = [
    "ACTION_MODEL_SUFFIX",
    "ADAPTER_DIR_SUFFIX",
    "BASE_WEIGHTS_FILE",
    "MERGED_SUFFIX",
    "LoraSettings",
    "apply_lora",
    "is_lora_model",
    "load_and_merge",
    "merge_lora",
    "restore_lora_checkpoint",
    "save_lora_checkpoint",
]

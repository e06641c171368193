"""DeepSpeed helpers: importing it on any machine, and its config with the run's "auto" values filled.

The training loop under DeepSpeed is the trainer's own (train.py, through
`backends.DeepSpeedBackend`): one `deepspeed.initialize` for the whole stream,
the same hook order as every other run.

On a machine without GPUs set DS_ACCELERATOR=cpu (done here when unset) and use
the gloo backend; neither oneCCL nor intel_extension_for_pytorch is needed.

Usage (one process per rank, e.g. under `torchrun --nproc_per_node 2`)::

    trainer = ContinualVLATrainer(cfg, deepspeed_config="configs/deepspeed/zero2.json")
    trainer.train()
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch

from AlphaBrain.utils.errors import ConfigError

DEFAULT_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "deepspeed" / "zero2.json"

SHM_COMM_OP = "deepspeed_shm_comm"


def import_deepspeed():
    """`deepspeed`, with its CPU accelerator selected when there is no GPU (must be set before the import)."""
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    try:
        import deepspeed
    except ImportError:
        raise ConfigError(
            "DeepSpeed is not installed. Install it with: pip install -e '.[deepspeed]' (or pip install deepspeed)."
        ) from None
    if not torch.cuda.is_available() and os.environ.get("ALPHABRAIN_DS_SHM_COMM", "0") != "1":
        # DeepSpeed's CPU backend otherwise compiles a shared-memory all-reduce kernel (C++, ~2 min, needs g++)
        # the first time a process group starts; gloo does the same collectives without it.
        deepspeed.ops.__compatible_ops__[SHM_COMM_OP] = False
    return deepspeed


def resolve_config(config: Any, trainer_cfg: Any, micro_batch_size: int, mixed_precision: str = "no") -> dict:
    """A DeepSpeed config dict with accelerate's "auto" values filled from the run's settings.

    `config` is a dict or a path to a JSON file (e.g. configs/deepspeed/zero2.json, shared with
    `accelerate launch --use_deepspeed`).
    """
    if config is None:
        config = DEFAULT_CONFIG
    if not isinstance(config, Mapping):
        path = Path(config)
        if not path.is_file():
            raise ConfigError(f"DeepSpeed config {path} does not exist (the shipped one is {DEFAULT_CONFIG}).")
        config = json.loads(path.read_text())
    out = json.loads(json.dumps(dict(config)))  # deep copy; DeepSpeed edits the dict it is given
    accum = int(trainer_cfg.gradient_accumulation_steps)
    clip = trainer_cfg.gradient_clipping
    filled = {
        "train_micro_batch_size_per_gpu": int(micro_batch_size),
        "gradient_accumulation_steps": accum,
        "gradient_clipping": 0.0 if clip is None else float(clip),
    }
    for key, value in filled.items():
        if out.get(key, "auto") == "auto":
            out[key] = value
    if out.get("train_batch_size") == "auto":
        del out["train_batch_size"]  # DeepSpeed derives it: micro batch x accumulation x ranks
    for precision in ("bf16", "fp16"):
        block = out.get(precision)
        if isinstance(block, dict) and block.get("enabled") == "auto":
            block["enabled"] = mixed_precision == precision
    return out

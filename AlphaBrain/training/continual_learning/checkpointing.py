"""Per-task checkpoints: names, atomic writes, and finding where to resume.

A task checkpoint is complete when its `_cl_state.json` exists: it is written
last, after every other file of the checkpoint was renamed into place, so a
crash mid-save leaves a checkpoint that resume ignores (and overwrites).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from AlphaBrain.utils.atomic_io import atomic_path, atomic_write_json
from AlphaBrain.utils.errors import UserError

CL_STATE_SUFFIX = "_cl_state.json"
CL_TENSORS_SUFFIX = "_cl_state.safetensors"
FULL_SUFFIX = "_pytorch_model.pt"
LORA_DIR_SUFFIX = "_lora_adapter"
ACTION_MODEL_SUFFIX = "_action_model.pt"
STATE_FORMAT = 1

_NAME_RE = re.compile(r"^task_(\d+)_id(\d+)_steps_(\d+)$")


def checkpoint_prefix(position: int, task_id: int, global_step: int) -> str:
    return f"task_{position}_id{task_id}_steps_{global_step}"


@dataclass
class TaskCheckpoint:
    prefix: Path          # checkpoints/task_<k>_id<id>_steps_<N>
    position: int
    task_id: int
    global_step: int
    state: dict

    @property
    def model_file(self) -> Path:
        return Path(f"{self.prefix}{FULL_SUFFIX}")

    @property
    def is_lora(self) -> bool:
        """A LoRA checkpoint (adapter dir + action model) rather than a full state dict."""
        return bool(self.state.get("lora")) or Path(f"{self.prefix}{LORA_DIR_SUFFIX}").is_dir()


def save_full_checkpoint(
    ckpt_dir: Path, prefix: str, model_state: dict, cl_state: dict, cl_tensors: Optional[dict] = None
) -> Path:
    """Write `<prefix>_pytorch_model.pt` (+ tensors) then `<prefix>_cl_state.json`, each atomically."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    base = ckpt_dir / prefix
    with atomic_path(f"{base}{FULL_SUFFIX}") as tmp:
        torch.save(model_state, tmp)
    files = [f"{prefix}{FULL_SUFFIX}"]
    if cl_tensors:
        from safetensors.torch import save_file

        with atomic_path(f"{base}{CL_TENSORS_SUFFIX}") as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in cl_tensors.items()}, str(tmp))
        files.append(f"{prefix}{CL_TENSORS_SUFFIX}")
    atomic_write_json(f"{base}{CL_STATE_SUFFIX}", {**cl_state, "format": STATE_FORMAT, "files": files})
    return base


def list_complete_checkpoints(ckpt_dir: Path) -> list[TaskCheckpoint]:
    """Complete task checkpoints in stream order (one per position; the newest step wins)."""
    found: dict[int, TaskCheckpoint] = {}
    if not ckpt_dir.is_dir():
        return []
    for state_file in ckpt_dir.glob(f"task_*{CL_STATE_SUFFIX}"):
        prefix = state_file.name[: -len(CL_STATE_SUFFIX)]
        match = _NAME_RE.match(prefix)
        if not match:
            continue
        try:
            state = json.loads(state_file.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # unreadable marker = incomplete checkpoint
        if not all((ckpt_dir / f).exists() for f in state.get("files", [])):
            continue
        pos, tid, step = map(int, match.groups())
        ckpt = TaskCheckpoint(ckpt_dir / prefix, pos, tid, step, state)
        if pos not in found or step > found[pos].global_step:
            found[pos] = ckpt
    return [found[p] for p in sorted(found)]


def last_complete_prefix(ckpts: list[TaskCheckpoint]) -> Optional[TaskCheckpoint]:
    """The last checkpoint of the unbroken run of tasks 0..k (a gap means later ones are stale)."""
    last = None
    for expected, ckpt in enumerate(ckpts):
        if ckpt.position != expected:
            break
        last = ckpt
    return last


def load_model_state(ckpt: TaskCheckpoint) -> dict[str, Any]:
    try:
        return torch.load(ckpt.model_file, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file
        raise UserError(f"Cannot load checkpoint {ckpt.model_file}: {exc}") from None


def load_cl_tensors(ckpt: TaskCheckpoint) -> dict:
    path = Path(f"{ckpt.prefix}{CL_TENSORS_SUFFIX}")
    if not path.exists():
        return {}
    from safetensors.torch import load_file

    return load_file(str(path))

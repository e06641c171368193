"""Per-task checkpoints: atomic writes, the complete ones of a run, and which one a name designates.

A task checkpoint is complete when its `_cl_state.json` exists: it is written
last, after every other file of the checkpoint was renamed into place, so a
crash mid-save leaves a checkpoint that resume ignores (and overwrites).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import torch

from AlphaBrain.runs.layout import (
    CL_STATE_SUFFIX,
    CL_TENSORS_SUFFIX,
    FULL_SUFFIX,
    LORA_DIR_SUFFIX,
    MERGED_SUFFIX,
    STATE_FORMAT,
    parse_prefix,
    strip_checkpoint_suffix,
)
from AlphaBrain.utils.atomic_io import atomic_path, atomic_write_json
from AlphaBrain.utils.errors import UserError, did_you_mean


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

    @property
    def is_mid_task(self) -> bool:
        """Taken inside a task (`checkpoints/mid_task/`, see mid_task.py) rather than at its end."""
        return bool(self.state.get("mid_task"))


def save_cl_tensors(ckpt_dir: Path, prefix: str, cl_tensors: Optional[dict]) -> list[str]:
    """Write the algorithm's tensors as `<prefix>_cl_state.safetensors` (atomically); the file names written."""
    if not cl_tensors:
        return []
    from safetensors.torch import save_file

    name = f"{prefix}{CL_TENSORS_SUFFIX}"
    with atomic_path(ckpt_dir / name) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in cl_tensors.items()}, str(tmp))
    return [name]


def write_state_marker(ckpt_dir: Path, prefix: str, cl_state: dict, files: list[str], **extra) -> None:
    """The `_cl_state.json` that marks a checkpoint complete: always the last file written."""
    atomic_write_json(ckpt_dir / f"{prefix}{CL_STATE_SUFFIX}", {**cl_state, "format": STATE_FORMAT, "files": files, **extra})


def save_full_checkpoint(
    ckpt_dir: Path, prefix: str, model_state: dict, cl_state: dict, cl_tensors: Optional[dict] = None,
    extra_files: Sequence[str] = (),
) -> Path:
    """Write `<prefix>_pytorch_model.pt` (+ tensors) then `<prefix>_cl_state.json`, each atomically.

    `extra_files`: files of this checkpoint the caller already wrote (mid-task trainer state), listed in the marker
    so that the checkpoint counts as complete only when they exist too.
    """
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(ckpt_dir / f"{prefix}{FULL_SUFFIX}") as tmp:
        torch.save(model_state, tmp)
    files = [f"{prefix}{FULL_SUFFIX}", *save_cl_tensors(ckpt_dir, prefix, cl_tensors), *extra_files]
    write_state_marker(ckpt_dir, prefix, cl_state, files)
    return ckpt_dir / prefix


def iter_complete_checkpoints(ckpt_dir: Path) -> Iterator[TaskCheckpoint]:
    """Every complete checkpoint directly in `ckpt_dir` (marker readable, every file it lists present)."""
    if not ckpt_dir.is_dir():
        return
    for state_file in ckpt_dir.glob(f"task_*{CL_STATE_SUFFIX}"):
        prefix = state_file.name[: -len(CL_STATE_SUFFIX)]
        parsed = parse_prefix(prefix)
        if parsed is None:
            continue
        try:
            state = json.loads(state_file.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # unreadable marker = incomplete checkpoint
        if not all((ckpt_dir / f).exists() for f in state.get("files", [])):
            continue
        yield TaskCheckpoint(ckpt_dir / prefix, *parsed, state)


def list_complete_checkpoints(ckpt_dir: Path) -> list[TaskCheckpoint]:
    """Complete task checkpoints in stream order (one per position; the newest step wins)."""
    found: dict[int, TaskCheckpoint] = {}
    for ckpt in iter_complete_checkpoints(ckpt_dir):
        if ckpt.position not in found or ckpt.global_step > found[ckpt.position].global_step:
            found[ckpt.position] = ckpt
    return [found[p] for p in sorted(found)]


def last_complete_prefix(ckpts: list[TaskCheckpoint]) -> Optional[TaskCheckpoint]:
    """The last checkpoint of the unbroken run of tasks 0..k (a gap means later ones are stale)."""
    last = None
    for expected, ckpt in enumerate(ckpts):
        if ckpt.position != expected:
            break
        last = ckpt
    return last


def load_cl_tensors(ckpt: TaskCheckpoint) -> dict:
    path = Path(f"{ckpt.prefix}{CL_TENSORS_SUFFIX}")
    if not path.exists():
        return {}
    from safetensors.torch import load_file

    return load_file(str(path))


def checkpoint_of_weights(weights: Path) -> Optional[TaskCheckpoint]:
    """The checkpoint whose weights are `weights` (its `_cl_state.json` read), or None for a file outside a run."""
    prefix = weights.parent / strip_checkpoint_suffix(weights.name)
    marker = Path(f"{prefix}{CL_STATE_SUFFIX}")
    if not marker.is_file():
        return None
    try:
        state = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{marker} is damaged ({exc}); evaluate another checkpoint or retrain that task.") from None
    return TaskCheckpoint(prefix, 0, 0, 0, state)


def load_state_into(model: Any, weights: Path, fix_hint: str) -> None:
    """Load a full state dict file into `model`; a file that does not fit names the mismatch and `fix_hint`."""
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, foreign or pickled-object file
        raise UserError(f"Cannot load checkpoint {weights}: {exc}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:  # shape / key mismatch: another architecture or config
        first = str(exc).strip().splitlines()[-1].strip()
        raise UserError(f"{weights.name} does not fit the {type(model).__name__} model ({first}); {fix_hint}") from None


# ------------------------------------------------------------------------------- names -> weights
_LAST = ("last", "latest")


def weights_for_prefix(ckpt_dir: Path, prefix: str) -> Optional[Path]:
    """The weights of a checkpoint prefix: the full state dict, a merged LoRA file that is newer than its
    adapter, or else the LoRA adapter dir itself (merged in memory when loaded)."""
    full = ckpt_dir / f"{prefix}{FULL_SUFFIX}"
    if full.is_file():
        return full
    adapter = ckpt_dir / f"{prefix}{LORA_DIR_SUFFIX}"
    merged = ckpt_dir / f"{prefix}{MERGED_SUFFIX}"
    if merged.is_file():
        stale = adapter.is_dir() and merged.stat().st_mtime < _newest_mtime(adapter)
        if not stale:
            return merged
    return adapter if adapter.is_dir() else None


def _newest_mtime(folder: Path) -> float:
    return max((p.stat().st_mtime for p in folder.iterdir()), default=folder.stat().st_mtime)


def resolve_checkpoint(run_dir: str | Path, name_or_path: str | Path = "last") -> Path:
    """The weights (`*_pytorch_model.pt`, `*_merged.pt` or a `*_lora_adapter/` dir) that `name_or_path` designates.

    Accepted: "last"/"latest" (the final complete task checkpoint); a checkpoint
    prefix such as "task_2_id2_steps_300" (any of its file names works too);
    "task_<k>" (the complete checkpoint of stream position k); or a path to a
    weights file (absolute, relative to the working directory, or relative to the
    run dir or its checkpoints/ folder). An unknown name lists the available ones.
    """
    from AlphaBrain.runs.layout import CHECKPOINTS_DIR

    run_dir = Path(run_dir)
    ckpt_dir = run_dir / CHECKPOINTS_DIR
    text = str(name_or_path).strip()
    complete = list_complete_checkpoints(ckpt_dir)
    names = [c.prefix.name for c in complete]

    for candidate in (Path(text), run_dir / text, ckpt_dir / text):
        if candidate.is_file():
            if candidate.suffix in (".pt", ".pth", ".bin"):
                return candidate.resolve()
            text = candidate.name  # e.g. a checkpoint's _cl_state.json: resolved by its prefix below
            break
        if candidate.is_dir() and candidate.name.endswith(LORA_DIR_SUFFIX):
            return candidate.resolve()

    if text.lower() in _LAST:
        if not complete:
            raise UserError(f"No complete task checkpoint in {ckpt_dir}: has the run finished its first task?")
        text = complete[-1].prefix.name
    elif text.startswith("task_") and text[5:].isdigit():
        k = int(text[5:])
        matches = [c for c in complete if c.position == k]
        if not matches:
            raise UserError(
                f"No complete checkpoint for task position {k} in {ckpt_dir}; available: {', '.join(names) or 'none'}."
            )
        text = matches[0].prefix.name

    named = Path(text)
    prefix = strip_checkpoint_suffix(named.name)
    if named.parent != Path("."):  # e.g. mid_task/<prefix>: a checkpoint in a folder of checkpoints/
        prefix = f"{named.parent.as_posix()}/{prefix}"
    weights = weights_for_prefix(ckpt_dir, prefix)
    if weights is not None:
        complete_marker = ckpt_dir / f"{prefix}{CL_STATE_SUFFIX}"
        if not complete_marker.is_file() and not weights.name.endswith(MERGED_SUFFIX):
            raise UserError(
                f"Checkpoint {prefix} in {ckpt_dir} is incomplete (its {CL_STATE_SUFFIX} is missing: the save was "
                f"interrupted). Complete checkpoints: {', '.join(names) or 'none'}."
            )
        return weights.resolve()
    if prefix in names:
        raise UserError(f"Checkpoint {prefix} in {ckpt_dir} has no weights file.")
    raise UserError(
        f'Unknown checkpoint "{text}" for run {run_dir}.{did_you_mean(prefix, names)} '
        f"Available: {', '.join(names) or 'none'} (or \"last\", \"task_<k>\", or a path to a .pt file)."
    )

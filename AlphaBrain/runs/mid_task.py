"""Mid-task checkpoints: resumable points inside a task (`trainer.save_interval`).

    checkpoints/mid_task/task_<k>_id<id>_steps_<N>
        _pytorch_model.pt | _lora_adapter/ + _action_model.pt    the weights, as at a task end
        _cl_state.safetensors                                     the algorithm's tensors (rank 0's)
        _trainer_state.pt                                         optimizer, LR schedule, step in the task
        _rank<r>_state.pt                                         per process: every RNG, the algorithm's JSON state
        _cl_state.json                                            the marker, written last

The algorithm's JSON state is kept per process because replay sampling streams
are per rank; its tensors agree across ranks (test_multiprocess.py checks it)
and are written once. Listing `checkpoints/` (evaluation, "last", "task_<k>")
never sees this folder; a mid-task checkpoint is used only when named
(`mid_task/<prefix>`) or by a resumed run. Only the newest `trainer.keep_last`
are kept; task-end checkpoints are never deleted.
"""

from __future__ import annotations

import shutil
from pathlib import Path
import torch

from AlphaBrain.runs.checkpoints import TaskCheckpoint, iter_complete_checkpoints
from AlphaBrain.runs.layout import CL_STATE_SUFFIX, TRAINER_STATE_SUFFIX, rank_state_suffix
from AlphaBrain.utils.atomic_io import atomic_path
from AlphaBrain.utils.errors import UserError


def list_mid_task_checkpoints(mid_dir: Path) -> list[TaskCheckpoint]:
    """Every complete mid-task checkpoint, oldest first (by global step)."""
    return sorted(iter_complete_checkpoints(mid_dir), key=lambda c: c.global_step)


def write_part(mid_dir: Path, name: str, payload: dict) -> str:
    """One torch-saved part of a mid-task checkpoint (atomically); returns its file name for the marker."""
    with atomic_path(mid_dir / name) as tmp:
        torch.save(payload, tmp)
    return name


def trainer_state_name(prefix: str) -> str:
    return f"{prefix}{TRAINER_STATE_SUFFIX}"


def rank_state_name(prefix: str, rank: int) -> str:
    return f"{prefix}{rank_state_suffix(rank)}"


def read_part(ckpt: TaskCheckpoint, name: str) -> dict:
    path = ckpt.prefix.parent / name
    try:
        # Optimizer, schedule, RNG and algorithm states are tensors and plain values: no pickled objects.
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as exc:
        raise UserError(
            f"Cannot read {path} ({type(exc).__name__}: {exc}). Delete the folder {ckpt.prefix.name}* in "
            f"{ckpt.prefix.parent} to resume from the checkpoint before it."
        ) from None


def read_rank_state(ckpt: TaskCheckpoint, rank: int, world_size: int) -> dict:
    """This process's part of a mid-task checkpoint; refuses a resume with another number of processes."""
    saved = int(ckpt.state.get("world_size", 1))
    if saved != world_size:
        raise UserError(
            f"{ckpt.prefix.name} (mid-task) was written by {saved} process(es) and this run has {world_size}: the "
            f"data order and the per-process random streams are per rank. Resume with {saved} process(es), or move "
            f"{ckpt.prefix.parent} away to resume from the last task-end checkpoint."
        )
    return read_part(ckpt, rank_state_name(ckpt.prefix.name, rank))


def prune_mid_task(mid_dir: Path, keep_last: int) -> list[str]:
    """Delete all but the newest `keep_last` mid-task checkpoints (0 keeps every one); returns the removed prefixes.

    Each one's marker goes first, so an interrupted deletion leaves an incomplete checkpoint, never a broken
    complete one. Files shared by several checkpoints (a random LoRA base) are not the checkpoint's own and stay.
    """
    if keep_last <= 0:
        return []
    removed = []
    for ckpt in list_mid_task_checkpoints(mid_dir)[:-keep_last]:
        prefix = ckpt.prefix.name
        (mid_dir / f"{prefix}{CL_STATE_SUFFIX}").unlink(missing_ok=True)
        for name in ckpt.state.get("files", []):
            if not name.startswith(prefix):
                continue
            path = mid_dir / name
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        removed.append(prefix)
    return removed


def newest_resumable(mid: list[TaskCheckpoint], after_position: int) -> TaskCheckpoint | None:
    """The newest mid-task checkpoint of the task that follows the last completed one (older ones are stale)."""
    candidates = [c for c in mid if c.position == after_position + 1]
    return candidates[-1] if candidates else None


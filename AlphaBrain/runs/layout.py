"""The names of everything a run directory holds (DESIGN.md, "Checkpoints").

    results/Checkpoints/<run_id>/
      config.yaml                  the resolved config the run was trained with
      stream.json                  the ordered task list (names, instructions, frames)
      policy_spec.json             shapes, camera order and data fingerprints, so serving needs no dataset
      dataset_statistics.json      (un)normalization statistics of the whole stream
      metrics.jsonl                training log
      checkpoints/task_<k>_id<id>_steps_<N><suffix>
      checkpoints/mid_task/task_<k>_id<id>_steps_<N><suffix>   (trainer.save_interval > 0)

Only this module spells these names; everything else asks it.
"""

from __future__ import annotations

import re
from typing import Optional

CONFIG_FILE = "config.yaml"
STREAM_FILE = "stream.json"
POLICY_SPEC_FILE = "policy_spec.json"
STATISTICS_FILE = "dataset_statistics.json"
TRAIN_LOG_FILE = "metrics.jsonl"
CHECKPOINTS_DIR = "checkpoints"
MID_TASK_DIR = "mid_task"  # under checkpoints/: resumable points inside a task, unseen by a plain listing

# Checkpoint files: <prefix><suffix>. The _cl_state.json marker is written last.
CL_STATE_SUFFIX = "_cl_state.json"
CL_TENSORS_SUFFIX = "_cl_state.safetensors"
FULL_SUFFIX = "_pytorch_model.pt"
MERGED_SUFFIX = "_merged.pt"
LORA_DIR_SUFFIX = "_lora_adapter"
ACTION_MODEL_SUFFIX = "_action_model.pt"
BASE_WEIGHTS_FILE = "lora_base_weights.safetensors"  # a random-init LoRA base, saved once per run
TRAINER_STATE_SUFFIX = "_trainer_state.pt"  # mid-task: optimizer, LR schedule, position in the task
CHECKPOINT_SUFFIXES = (FULL_SUFFIX, MERGED_SUFFIX, CL_STATE_SUFFIX, CL_TENSORS_SUFFIX, ACTION_MODEL_SUFFIX,
                       LORA_DIR_SUFFIX, TRAINER_STATE_SUFFIX)
STATE_FORMAT = 1

_PREFIX_RE = re.compile(r"^task_(\d+)_id(\d+)_steps_(\d+)$")
_RANK_STATE_RE = re.compile(r"_rank\d+_state\.pt$")


def rank_state_suffix(rank: int) -> str:
    """Mid-task: one file per process with its RNG states and the algorithm's (per-rank) JSON state."""
    return f"_rank{int(rank)}_state.pt"


def checkpoint_prefix(position: int, task_id: int, global_step: int) -> str:
    return f"task_{position}_id{task_id}_steps_{global_step}"


def parse_prefix(prefix: str) -> Optional[tuple[int, int, int]]:
    """(position, task_id, global_step) of a checkpoint prefix, or None if it is not one."""
    match = _PREFIX_RE.match(prefix)
    return None if match is None else tuple(map(int, match.groups()))  # type: ignore[return-value]


def strip_checkpoint_suffix(name: str) -> str:
    """The checkpoint prefix of any of its file names."""
    match = _RANK_STATE_RE.search(name)
    if match:
        return name[: match.start()]
    for suffix in CHECKPOINT_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name

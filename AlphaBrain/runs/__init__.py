"""The run layer: everything a training run directory holds, read and written in one place.

    from AlphaBrain.runs import RunDir, load_run_model
    run = RunDir("results/Checkpoints/<run_id>")
    loaded = run.load_model("last")

layout.py           file names and checkpoint suffixes (the only place that spells them)
checkpoints.py      full checkpoints, complete-checkpoint listing, resume point, name -> weights
lora_checkpoint.py  LoRA checkpoints: adapter + action model, resume, merge into a full model
run_dir.py          RunDir: config.yaml, stream.json, policy_spec.json, statistics, checkpoints
loading.py          load_run_model: a run's model at a checkpoint, with its normalizer

Layer: above `model` (it builds and loads models), below training, evaluation and deployment.
"""

from AlphaBrain.runs.checkpoints import TaskCheckpoint, list_complete_checkpoints, resolve_checkpoint
from AlphaBrain.runs.layout import checkpoint_prefix, strip_checkpoint_suffix
from AlphaBrain.runs.loading import LoadedPolicy, load_run_model
from AlphaBrain.runs.run_dir import RunDir, policy_spec, read_stream_order, statistics_missing_message

__all__ = [
    "LoadedPolicy",
    "RunDir",
    "TaskCheckpoint",
    "checkpoint_prefix",
    "list_complete_checkpoints",
    "load_run_model",
    "policy_spec",
    "read_stream_order",
    "resolve_checkpoint",
    "statistics_missing_message",
    "strip_checkpoint_suffix",
]

"""The run layer: everything a training run directory holds, read and written in one place.

    from AlphaBrain.runs import RunDir, load_run_model
    run = RunDir("results/Checkpoints/<run_id>")
    loaded = run.load_model("last")

layout.py           file names and checkpoint suffixes (the only place that spells them)
checkpoints.py      full checkpoints, complete-checkpoint listing, resume point, name -> weights
lora_checkpoint.py  LoRA checkpoints: adapter + action model, resume, merge into a full model
mid_task.py         mid-task checkpoints (trainer.save_interval): their extra parts, listing, pruning
run_dir.py          RunDir: config.yaml, stream.json, policy_spec.json, statistics, checkpoints
loading.py          load_run_model: a run's model at a checkpoint, with its normalizer

Layer: above `model` (it builds and loads models), below training, evaluation and deployment.
"""

from AlphaBrain.utils.lazy import lazy_attributes

# Imported on first use: layout.py (the file names) must stay importable without torch.
_WHERE = {
    "LoadedPolicy": "loading",
    "RunDir": "run_dir",
    "TaskCheckpoint": "checkpoints",
    "checkpoint_prefix": "layout",
    "list_complete_checkpoints": "checkpoints",
    "load_run_model": "loading",
    "policy_spec": "run_dir",
    "read_stream_order": "run_dir",
    "resolve_checkpoint": "checkpoints",
    "statistics_missing_message": "run_dir",
    "strip_checkpoint_suffix": "layout",
}
__getattr__ = lazy_attributes(__name__, _WHERE)

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

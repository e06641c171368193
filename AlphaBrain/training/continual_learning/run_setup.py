"""Run-directory decisions made before training: normalization statistics and where to resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig

from AlphaBrain.training.continual_learning import checkpointing as ckpt_io
from AlphaBrain.utils.errors import UserError


def _sub_datasets(stream: Any) -> list:
    base = stream.base_dataset
    return list(getattr(base, "datasets", [base]))


def prepare_statistics(cfg: DictConfig, stream: Any, run_dir: Path) -> dict:
    """Load or compute `dataset_statistics.json` and attach normalizers to the stream's datasets.

    Statistics cover the whole base mixture of the stream (every task), because
    evaluation of every checkpoint must unnormalize actions the same way.
    """
    from AlphaBrain.dataloader import Normalizer, compute_dataset_statistics, load_dataset_statistics

    subs = _sub_datasets(stream)
    expected = {d.embodiment: (d.state_dim, d.action_dim) for d in subs}
    given = cfg.datasets.vla_data.get("dataset_statistics")
    in_run = run_dir / "dataset_statistics.json"
    if given:
        stats = load_dataset_statistics(given, expected)
    elif bool(cfg.trainer.is_resume) and in_run.exists():
        stats = load_dataset_statistics(in_run, expected)  # a resumed run keeps the statistics it started with
    else:
        stats = compute_dataset_statistics(subs)
    for sub in subs:
        sub.set_normalizer(Normalizer(stats[sub.embodiment]))
    return stats


def resume_point(cfg: DictConfig, run_dir: Path, stream: Any) -> Optional[ckpt_io.TaskCheckpoint]:
    """The checkpoint to continue from, or None to start at task 0.

    Refuses to silently overwrite a run that already has checkpoints, and
    refuses to resume onto a different task stream.
    """
    ckpts = ckpt_io.list_complete_checkpoints(run_dir / "checkpoints")
    if not bool(cfg.trainer.is_resume):
        if ckpts:
            raise UserError(
                f"{run_dir} already holds checkpoints for {len(ckpts)} task(s). Pass --resume "
                "(trainer.is_resume=true) to continue that run, or choose another --run-id."
            )
        return None
    if not ckpts:
        print(f"[alphabrain] --resume: no complete task checkpoint in {run_dir}; starting from task 0.", flush=True)
        return None
    saved = run_dir / "stream.json"
    if saved.exists():
        old = [t["name"] for t in json.loads(saved.read_text())["tasks"]]
        new = [t.name for t in stream.tasks]
        if old != new:
            raise UserError(
                f"Cannot resume {run_dir}: it was trained on the task stream {old}, but this config gives {new}. "
                "Use the same dataset/task_order, or a new --run-id."
            )
    last = ckpt_io.last_complete_prefix(ckpts)
    if last is None:
        return None
    if last.position >= len(stream.tasks) - 1:
        print(f"[alphabrain] --resume: all {len(stream.tasks)} tasks of {run_dir} are already trained.", flush=True)
    return last


# ------------------------------------------------------------------------------------ policy spec
POLICY_SPEC_FILE = "policy_spec.json"


def policy_spec(stream: Any) -> dict:
    """What serving a checkpoint needs to know about the training data, so it does not need the data itself:
    the shapes the model was built for, each embodiment's (state_dim, action_dim) and the camera order."""
    subs = _sub_datasets(stream)
    spec = stream.base_dataset.data_spec
    return {
        "data_spec": {
            "state_dim": spec.state_dim,
            "action_dim": spec.action_dim,
            "action_horizon": spec.action_horizon,
            "num_cameras": spec.num_cameras,
            "image_size": list(spec.image_size),
        },
        "embodiments": {d.embodiment: [d.state_dim, d.action_dim] for d in subs},
        "camera_keys": [str(k) for k in getattr(subs[0], "image_keys", [])],
    }


def read_policy_spec(run_dir: Path) -> Optional[dict]:
    """The run's `policy_spec.json` with `data_spec` as a DataSpec, or None for runs written before it existed."""
    from AlphaBrain.dataloader.spec import DataSpec

    path = Path(run_dir) / POLICY_SPEC_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
        d = raw["data_spec"]
        raw["data_spec"] = DataSpec(
            state_dim=int(d["state_dim"]), action_dim=int(d["action_dim"]), action_horizon=int(d["action_horizon"]),
            num_cameras=int(d["num_cameras"]), image_size=(int(d["image_size"][0]), int(d["image_size"][1])),
        )
        raw["embodiments"] = {k: (int(v[0]), int(v[1])) for k, v in raw["embodiments"].items()}
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise UserError(f"{path} is damaged ({type(exc).__name__}: {exc}); delete it to fall back to the dataset.") from None
    return raw

"""`RunDir`: the one owner of a training run's directory.

    run = RunDir("results/Checkpoints/<run_id>")        # or RunDir.of(cfg)
    run.checkpoints()                                   # complete task checkpoints, in stream order
    run.mid_task_checkpoints()                          # complete mid-task checkpoints, oldest first
    run.resume_point(is_resume=True, stream=stream)     # where a resumed run continues (task end or mid-task)
    run.write_start_files(cfg, stream, stats)           # config.yaml, stream.json, policy_spec.json, statistics
    run.save_task_checkpoint(model, prefix, state, tensors, lora=False)
    run.stream_task_names()                             # train order, as the evaluation matrix needs it

Training, evaluation, the policy server and the LoRA merge CLI all read and write runs through
this class (file names in `layout.py`, checkpoint files in `checkpoints.py` / `lora_checkpoint.py`);
`loading.load_run_model(run_dir, checkpoint)` builds a run's model at a checkpoint on top of it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from AlphaBrain.runs import checkpoints as ckpt_io
from AlphaBrain.runs.layout import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    MID_TASK_DIR,
    POLICY_SPEC_FILE,
    STATISTICS_FILE,
    STREAM_FILE,
)
from AlphaBrain.runs.mid_task import list_mid_task_checkpoints, newest_resumable
from AlphaBrain.utils.atomic_io import atomic_write_json, atomic_write_text
from AlphaBrain.utils.errors import UserError
from AlphaBrain.utils.text import unique_task_names


def sub_datasets(stream: Any) -> list:
    base = stream.base_dataset
    return list(getattr(base, "datasets", [base]))


def policy_spec(stream: Any) -> dict:
    """What serving a checkpoint needs to know about the training data, so it does not need the data itself:
    the shapes the model was built for, each embodiment's (state_dim, action_dim), the camera order, and
    the fingerprint of the data per embodiment (statistics computed on other data are refused)."""
    from AlphaBrain.dataloader.fingerprint import data_fingerprints

    subs = sub_datasets(stream)
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
        "data_fingerprints": data_fingerprints(subs),
    }


def recompute_statistics_command(config: Any, out: Any) -> str:
    return f"python scripts/run_continual_learning_scripts/compute_dataset_statistics.py --config {config} --out {out}"


def statistics_missing_message(path: Path) -> str:
    return (
        f"{path} has no {STATISTICS_FILE}, so predicted actions cannot be unnormalized. Recompute it with: "
        + recompute_statistics_command(path / CONFIG_FILE, path / STATISTICS_FILE)
    )


class RunDir:
    """A training run directory, `results/Checkpoints/<run_id>/` (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config_file = self.path / CONFIG_FILE
        self.stream_file = self.path / STREAM_FILE
        self.policy_spec_file = self.path / POLICY_SPEC_FILE
        self.statistics_file = self.path / STATISTICS_FILE
        self.checkpoint_dir = self.path / CHECKPOINTS_DIR
        self.mid_task_dir = self.checkpoint_dir / MID_TASK_DIR

    @classmethod
    def of(cls, cfg: Any) -> "RunDir":
        """The run dir a config trains into: `<run_root_dir>/<run_id>`."""
        return cls(Path(cfg.run_root_dir) / str(cfg.run_id))

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # --------------------------------------------------------------- checks
    def check_trained(self, need_statistics: bool = True) -> None:
        """UserError unless this is a run dir the trainer wrote (config.yaml, and statistics when asked)."""
        if not self.path.is_dir():
            raise UserError(f"Run directory {self.path} does not exist (expected results/Checkpoints/<run_id>/).")
        if not self.config_file.is_file():
            raise UserError(
                f"{self.path} has no {CONFIG_FILE}: not a training run dir (expected results/Checkpoints/<run_id>/, "
                "as written by the continual trainer)."
            )
        if need_statistics and not self.statistics_file.is_file():
            raise UserError(statistics_missing_message(self.path))

    # ------------------------------------------------------------ checkpoints
    def checkpoints(self) -> list[ckpt_io.TaskCheckpoint]:
        return ckpt_io.list_complete_checkpoints(self.checkpoint_dir)

    def resolve_checkpoint(self, name_or_path: str | Path = "last") -> Path:
        return ckpt_io.resolve_checkpoint(self.path, name_or_path)

    def mid_task_checkpoints(self) -> list[ckpt_io.TaskCheckpoint]:
        return list_mid_task_checkpoints(self.mid_task_dir)

    def resume_point(self, is_resume: bool, stream: Any) -> Optional[ckpt_io.TaskCheckpoint]:
        """The checkpoint to continue from, or None to start at task 0.

        The newest complete one: a mid-task checkpoint of the task after the last
        completed task if there is one (its `state["mid_task"]` is true), else that
        task's end. Refuses to silently overwrite a run that already has
        checkpoints, and refuses to resume onto a different task stream.
        """
        ckpts, mids = self.checkpoints(), self.mid_task_checkpoints()
        if not is_resume:
            if ckpts or mids:
                raise UserError(
                    f"{self.path} already holds checkpoints ({len(ckpts)} task end(s), {len(mids)} mid-task). Pass "
                    "--resume (trainer.is_resume=true) to continue that run, or choose another --run-id."
                )
            return None
        last = ckpt_io.last_complete_prefix(ckpts)
        mid = newest_resumable(mids, -1 if last is None else last.position)
        if last is None and mid is None:
            print(f"[alphabrain] --resume: no complete checkpoint in {self.path}; starting from task 0.", flush=True)
            return None
        if self.stream_file.exists():
            old = self.stream_task_names()
            new = [t.name for t in stream.tasks]
            if old != new:
                raise UserError(
                    f"Cannot resume {self.path}: it was trained on the task stream {old}, but this config gives {new}. "
                    "Use the same dataset/task_order, or a new --run-id."
                )
        if mid is not None:
            return mid
        if last.position >= len(stream.tasks) - 1:
            print(f"[alphabrain] --resume: all {len(stream.tasks)} tasks of {self.path} are already trained.", flush=True)
        return last

    def save_task_checkpoint(self, model: Any, prefix: str, state: dict, tensors: dict, *, lora: bool,
                             mid_task: bool = False, extra_files: tuple[str, ...] = ()) -> Path:
        """A full (`_pytorch_model.pt`) or LoRA (adapter + action model) checkpoint, marker last.

        `mid_task` writes into `checkpoints/mid_task/`, where `extra_files` (trainer and per-rank state, already
        written there) complete it.
        """
        folder = self.mid_task_dir if mid_task else self.checkpoint_dir
        if lora:
            from AlphaBrain.runs.lora_checkpoint import save_lora_checkpoint

            return save_lora_checkpoint(model, folder, prefix, state, tensors, extra_files)
        state_dict = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        return ckpt_io.save_full_checkpoint(folder, prefix, state_dict, state, tensors, extra_files)

    def restore_task_checkpoint(self, model: Any, ckpt: ckpt_io.TaskCheckpoint, *, lora: bool) -> dict:
        """Load a checkpoint's weights into `model` (built by this run's config); returns the algorithm tensors."""
        self.restore_weights(model, ckpt, lora=lora)
        return ckpt_io.load_cl_tensors(ckpt)

    def restore_weights(self, model: Any, ckpt: ckpt_io.TaskCheckpoint, *, lora: bool) -> None:
        if ckpt.is_lora != lora:
            kind = "LoRA" if ckpt.is_lora else "full-parameter"
            raise UserError(
                f"Cannot resume from {ckpt.prefix.name}: it is a {kind} checkpoint but this config has "
                f"lora.enabled={lora}. Resume with the run's own settings (see {self.config_file}) or use a new --run-id."
            )
        if lora:
            from AlphaBrain.runs.lora_checkpoint import restore_lora_checkpoint

            restore_lora_checkpoint(model, ckpt.prefix)
        else:
            ckpt_io.load_state_into(
                model, ckpt.model_file,
                f"resume with the run's own settings (see {self.config_file}) or use a new --run-id.",
            )

    # ------------------------------------------------------------ run files
    def write_start_files(self, config_yaml: str, stream: Any, statistics: dict) -> None:
        """What a run records before its first step (again on resume), each file atomically."""
        from AlphaBrain.dataloader import save_dataset_statistics

        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.config_file, config_yaml)
        atomic_write_json(self.stream_file, stream.to_json())
        atomic_write_json(self.policy_spec_file, policy_spec(stream))
        save_dataset_statistics(statistics, self.statistics_file)

    def prepare_statistics(self, cfg: Any, stream: Any, is_resume: bool, allow_foreign: bool = False) -> dict:
        """Load or compute the run's statistics and attach normalizers to the stream's datasets.

        Statistics cover the whole base mixture of the stream (every task), because
        evaluation of every checkpoint must unnormalize actions the same way. A given
        `datasets.vla_data.dataset_statistics` file wins; a resumed run keeps its own. A file
        computed on other data (its fingerprint differs from this data's) is refused unless
        `allow_foreign` or `datasets.vla_data.allow_foreign_statistics` is set.
        """
        from AlphaBrain.dataloader import Normalizer, compute_dataset_statistics, load_dataset_statistics
        from AlphaBrain.dataloader.fingerprint import check_fingerprints, data_fingerprints

        subs = sub_datasets(stream)
        expected = {d.embodiment: (d.state_dim, d.action_dim) for d in subs}
        given = cfg.datasets.vla_data.get("dataset_statistics")
        source = given or (self.statistics_file if is_resume and self.statistics_file.exists() else None)
        if source:
            stats = load_dataset_statistics(source, expected)
            check_fingerprints(
                stats, data_fingerprints(subs), stats_file=source, data="the data this config trains on",
                fix="recompute it with: " + recompute_statistics_command("<your config>", source),
                allow_hint="set datasets.vla_data.allow_foreign_statistics=true",
                allow=allow_foreign or bool(cfg.datasets.vla_data.get("allow_foreign_statistics", False)),
            )
        else:
            stats = compute_dataset_statistics(subs)
        for sub in subs:
            sub.set_normalizer(Normalizer(stats[sub.embodiment]))
        return stats

    def check_statistics(self, allow_foreign: bool = False, stats: Optional[dict] = None,
                         spec: Optional[dict] = None) -> None:
        """Refuse dataset_statistics.json if it was computed on other data than the run trained on.

        Compares each embodiment's `data_fingerprint` with the one policy_spec.json recorded at
        training time; runs and statistics files from before fingerprints existed pass with a note.
        `stats` / `spec` save reading the files again when the caller has them.
        """
        from AlphaBrain.dataloader import load_dataset_statistics
        from AlphaBrain.dataloader.fingerprint import check_fingerprints, warn_once

        spec = self.read_policy_spec() if spec is None else spec
        recorded = (spec or {}).get("data_fingerprints")
        if not recorded:
            warn_once(str(self.path), f"{self.path} records no fingerprint of its training data (trained before "
                                      f"fingerprints existed): its {STATISTICS_FILE} is not checked against it")
            return
        check_fingerprints(
            load_dataset_statistics(self.statistics_file) if stats is None else stats, recorded,
            stats_file=self.statistics_file, data=f"the training data recorded in {self.policy_spec_file}",
            fix="recompute it with: " + recompute_statistics_command(self.config_file, self.statistics_file),
            allow_hint="pass --allow-foreign-statistics", allow=allow_foreign,
        )

    def stream_name(self, default: Optional[str] = None) -> Optional[str]:
        """The stream's name from stream.json (e.g. the suite to evaluate on), or `default` without the file."""
        if not self.stream_file.is_file():
            return default
        try:
            return str(json.loads(self.stream_file.read_text())["name"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{self.stream_file} is damaged ({type(exc).__name__}: {exc}); pass --suite.") from None

    def task_conditioned(self) -> Optional[str]:
        """The kind of per-task parameters this run's checkpoints carry (PackNet masks, per-task adapters:
        model/task_conditioning.py), or None for a task-agnostic method."""
        from AlphaBrain.model.task_conditioning import CONDITIONING_KEY

        for ckpt in self.checkpoints():
            meta = (ckpt.state.get("algorithm") or {}).get(CONDITIONING_KEY)
            if meta:
                return str(meta.get("kind"))
        return None

    def stream_task_names(self) -> list[str]:
        """Task names in training order, from stream.json (what an evaluation writes as `train_order`)."""
        return read_stream_order(self.stream_file)

    def read_policy_spec(self) -> Optional[dict]:
        """policy_spec.json with `data_spec` as a DataSpec, or None for runs written before it existed."""
        from AlphaBrain.dataloader.spec import DataSpec

        path = self.policy_spec_file
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


def read_stream_order(stream_json: str | Path) -> list[str]:
    """Task names in training order from a run's stream.json (or the run dir holding it)."""
    path = Path(stream_json)
    if path.is_dir():
        path = path / STREAM_FILE
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise UserError(
            f"cannot read {path}: {exc.strerror or exc}. Expected results/Checkpoints/<run_id>/{STREAM_FILE}."
        ) from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}).") from None
    tasks = data.get("tasks") if isinstance(data, dict) else None
    if not isinstance(tasks, list) or not all(isinstance(t, dict) and isinstance(t.get("name"), str) for t in tasks):
        raise UserError(f"{path}: expected {{\"tasks\": [{{\"name\": ...}}, ...]}} as written by the trainer.")
    return unique_task_names([t["name"] for t in tasks], "'tasks'", f"{path}: ")

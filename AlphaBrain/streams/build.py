"""Build the ordered task stream of a run from its YAML.

`continual_learning.task_sequence` is either
  - a declared stream name (libero_goal, metaworld_cl5, ...: see `registry.py`),
  - a DATASET_NAMED_MIXTURES name or a path to a LeRobot dataset / a folder of them
    (streamed with task_stream_mode: auto), or
  - an inline block: {base_data_mix, num_tasks, task_order, task_stream_mode, steps_per_task}, or
    {name: <one of the above>, task_order: [...], ...} to refine a named stream.

Partitioning (`task_stream_mode`):
  by_task_index  one task per task_index value of each dataset (LIBERO: one multi-task parquet)
  by_dataset     one task per sub-dataset of the mixture
  auto           by_task_index, falling back to by_dataset when that yields < 2 tasks
A declared stream with official task names is first put in that order; `task_order` then
picks positions in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
from omegaconf import DictConfig, OmegaConf

from AlphaBrain.config.loader import env_or_none
from AlphaBrain.streams.registry import STREAM_MODES, get_task_sequence, is_registered
from AlphaBrain.streams.task_filter import TaskFilteredDataset
from AlphaBrain.utils.errors import ConfigError, DatasetError, did_you_mean
from AlphaBrain.utils.text import slugify

INLINE_KEYS = ("name", "base_data_mix", "num_tasks", "task_order", "task_stream_mode", "steps_per_task", "description")


@dataclass
class TaskStream:
    """The ordered tasks of a run, each a view over one shared base dataset."""

    name: str
    base_data_mix: str
    mode: str
    base_dataset: Any
    tasks: list[TaskFilteredDataset]
    steps_per_task: int
    description: str = ""
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.tasks)

    def to_json(self) -> dict:
        """What `stream.json` records: enough to map eval tasks to train order without guessing."""
        subs = getattr(self.base_dataset, "datasets", [self.base_dataset])
        return {
            "name": self.name,
            "base_data_mix": self.base_data_mix,
            "task_stream_mode": self.mode,
            "steps_per_task": self.steps_per_task,
            "num_tasks": len(self.tasks),
            "tasks": [
                {
                    "task_id": t.task_id,
                    "name": t.name,
                    "instruction": t.instruction,
                    "num_frames": len(t),
                    **t.origin,
                    "dataset": str(subs[t.origin["dataset_index"]].root),
                }
                for t in self.tasks
            ],
        }


def resolve_stream_spec(cfg: DictConfig) -> tuple[str, dict]:
    """(stream name, spec dict) of `continual_learning.task_sequence`, whichever form it takes."""
    raw = cfg.continual_learning.task_sequence
    if raw is None:
        return "custom", {"base_data_mix": cfg.datasets.vla_data.data_mix, "task_stream_mode": "auto"}
    if not isinstance(raw, DictConfig):
        return _named_stream(str(raw), cfg)
    spec = OmegaConf.to_container(raw, resolve=True)
    for key in spec:
        if key not in INLINE_KEYS:
            raise ConfigError(
                f'Unknown key "continual_learning.task_sequence.{key}".{did_you_mean(key, INLINE_KEYS)} '
                f"Valid keys: {', '.join(INLINE_KEYS)}."
            )
    base_name = spec.pop("name", None)
    if base_name is not None and "base_data_mix" not in spec:
        name, base = _named_stream(str(base_name), cfg)
        if "task_order" in spec and "num_tasks" not in spec:
            base.pop("num_tasks", None)  # the stream's size was a property of its whole order, not of the user's pick
        return name, {**base, **spec}
    spec.setdefault("base_data_mix", cfg.datasets.vla_data.data_mix)
    spec.setdefault("task_stream_mode", "auto")
    return str(base_name or "custom"), spec


def _named_stream(name: str, cfg: DictConfig) -> tuple[str, dict]:
    """A declared stream, a mixture name or a dataset path; an unknown name lists the declared streams."""
    if is_registered(name):
        return name, get_task_sequence(name)
    from AlphaBrain.dataloader import DATASET_NAMED_MIXTURES

    extra = cfg.datasets.vla_data.get("named_mixtures") or {}
    looks_like_path = "/" in name or name.startswith((".", "~"))
    if looks_like_path or Path(name).expanduser().exists() or name in DATASET_NAMED_MIXTURES or name in extra:
        return Path(name).name or name, {"base_data_mix": name, "task_stream_mode": "auto"}
    return name, get_task_sequence(name)  # raises: unknown name, with the valid ones listed


def _natural_tasks(base: Any, mode: str) -> list[dict]:
    """Tasks in their natural order: (dataset, task_index) pairs or whole datasets."""
    subs = getattr(base, "datasets", [base])
    offsets = np.cumsum([0] + [len(d) for d in subs])
    tasks = []
    if mode == "by_task_index":
        for d, sub in enumerate(subs):
            for task_index, episodes in sorted(sub.episode_task_map().items()):
                indices = sub.indices_for_episodes(sorted(episodes)) + offsets[d]
                tasks.append(
                    {
                        "instruction": sub.tasks.get(task_index, f"task {task_index}"),
                        "indices": indices,
                        "origin": {"dataset_index": d, "task_index": int(task_index), "num_episodes": len(episodes)},
                    }
                )
    else:  # by_dataset
        for d, sub in enumerate(subs):
            instructions = list(dict.fromkeys(sub.tasks[t] for t in sorted(sub.tasks)))
            tasks.append(
                {
                    "instruction": " / ".join(instructions),
                    "name": Path(sub.root).name,
                    "indices": np.arange(offsets[d], offsets[d + 1], dtype=np.int64),
                    "origin": {"dataset_index": d, "task_index": None, "num_episodes": len(sub.episodes)},
                }
            )
    return tasks


def _in_named_order(tasks: list[dict], names: list[str], source: str) -> list[dict]:
    """The tasks of a registered benchmark stream in its official order, matched by task name."""
    by_name = {task.get("name") or slugify(task["instruction"]): task for task in tasks}
    missing = [n for n in names if n not in by_name]
    extra = [n for n in by_name if n not in names]
    if missing or extra:
        raise DatasetError(
            f"{source} does not hold this stream's tasks: "
            + "; ".join(filter(None, [f"missing {', '.join(missing)}" if missing else "",
                                      f"not in the stream {', '.join(extra)}" if extra else ""]))
            + ". Check that the dataset is the suite's LeRobot conversion (its tasks.jsonl instructions)."
        )
    return [by_name[n] for n in names]


def _apply_order(tasks: list[dict], order: Optional[list], num_tasks: Optional[int], source: str) -> list[dict]:
    if order is not None:
        if not isinstance(order, (list, tuple)) or not all(isinstance(i, int) for i in order):
            raise ConfigError(f"task_order must be a list of integers, got {order!r}.")
        bad = [i for i in order if not 0 <= i < len(tasks)]
        if bad:
            raise ConfigError(
                f"task_order has positions {bad} but {source} has {len(tasks)} tasks (valid: 0..{len(tasks) - 1})."
            )
        if len(set(order)) != len(order):
            raise ConfigError(f"task_order lists a task twice: {order}.")
        tasks = [tasks[i] for i in order]
    if num_tasks is not None:
        if not isinstance(num_tasks, int) or num_tasks < 1:
            raise ConfigError(f"num_tasks must be a positive integer, got {num_tasks!r}.")
        if num_tasks > len(tasks):
            raise DatasetError(
                f"The stream asks for num_tasks={num_tasks} but {source} yields only {len(tasks)} tasks. "
                "Lower num_tasks or check the dataset."
            )
        tasks = tasks[:num_tasks]
    return tasks


def _load_base(cfg: DictConfig, mix: str) -> Any:
    from AlphaBrain.dataloader import load_mixture

    image_keys = cfg.datasets.vla_data.image_keys
    return load_mixture(
        mix,
        env_or_none(cfg, "datasets.vla_data.data_root_dir"),
        action_horizon=int(cfg.framework.action_model.action_horizon),
        image_keys=OmegaConf.to_container(image_keys) if image_keys is not None else None,
        extra=OmegaConf.to_container(cfg.datasets.vla_data.named_mixtures) or None,
    )


def build_task_stream(cfg: DictConfig, base_dataset: Any = None) -> TaskStream:
    """Resolve the config's task stream; loads the base mixture unless `base_dataset` is given."""
    name, spec = resolve_stream_spec(cfg)
    mode = spec.get("task_stream_mode", "auto")
    if mode not in STREAM_MODES:
        raise ConfigError(
            f'Unknown task_stream_mode "{mode}".{did_you_mean(mode, STREAM_MODES)} Valid: {", ".join(STREAM_MODES)}.'
        )
    mix = str(spec["base_data_mix"])
    if base_dataset is None:
        try:
            base_dataset = _load_base(cfg, mix)
        except DatasetError as exc:
            hint = spec.get("missing_hint")
            if hint and not Path(mix).expanduser().exists():
                raise DatasetError(f"{exc}. Stream {name}: {hint}") from None
            raise
    effective = "by_task_index" if mode == "auto" else mode
    tasks = _natural_tasks(base_dataset, effective)
    if mode == "auto" and len(tasks) < 2:
        effective, tasks = "by_dataset", _natural_tasks(base_dataset, "by_dataset")
    source = f'data mix "{mix}" ({effective})'
    if spec.get("task_names"):
        tasks = _in_named_order(tasks, list(spec["task_names"]), source)
    tasks = _apply_order(tasks, spec.get("task_order"), spec.get("num_tasks"), source)
    if len(tasks) < 2:
        raise DatasetError(
            f"A continual-learning stream needs at least 2 tasks, but {source} yields {len(tasks)}. "
            "Use a dataset with several task_index values, or a mixture of datasets with task_stream_mode: by_dataset."
        )
    views, used = [], set()
    for position, task in enumerate(tasks):
        task_name = task.get("name") or slugify(task["instruction"])
        while task_name in used:  # the same instruction in two datasets of a mixture
            task_name = f"{task_name}_{task['origin']['dataset_index']}"
        used.add(task_name)
        view = TaskFilteredDataset(
            base_dataset, indices=task["indices"], task_id=position, name=task_name, instruction=task["instruction"]
        )
        view.origin = task["origin"]
        if len(view) == 0:
            raise DatasetError(f'Task "{task_name}" of {source} has no frames.')
        views.append(view)
    steps = spec.get("steps_per_task")
    steps = cfg.continual_learning.steps_per_task if steps is None else steps
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ConfigError(f"steps_per_task must be a positive integer, got {steps!r}.")
    return TaskStream(
        name=name,
        base_data_mix=mix,
        mode=effective,
        base_dataset=base_dataset,
        tasks=views,
        steps_per_task=int(steps),
        description=spec.get("description", ""),
    )

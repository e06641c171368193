"""Load a trained run's model at one checkpoint, with the statistics to (un)normalize it.

    from AlphaBrain.runs import load_run_model
    loaded = load_run_model("results/Checkpoints/<run_id>", "last")    # or "task_2", a prefix, a .pt path
    loaded.model, loaded.normalizer, loaded.camera_keys

`config.yaml` rebuilds the model, `dataset_statistics.json` (un)normalizes, `policy_spec.json`
gives the shapes and camera order (runs written before it existed read them off their dataset),
and the checkpoint's weights are loaded: a full state dict, or a LoRA adapter merged into the
freshly built base in memory.

A checkpoint of a task-conditioned method (PackNet, per-task LoRA adapters) also carries its
per-task parameters (`model/task_conditioning.py`): `loaded.select_task(name_or_instruction)`
turns the model into that task's, and a LoRA adapter is then kept injected instead of merged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from AlphaBrain.runs.checkpoints import checkpoint_of_weights, load_cl_tensors, load_state_into
from AlphaBrain.runs.layout import LORA_DIR_SUFFIX, MERGED_SUFFIX, STREAM_FILE
from AlphaBrain.runs.run_dir import RunDir, policy_spec
from AlphaBrain.utils.atomic_io import atomic_path
from AlphaBrain.utils.errors import DatasetError, UserError, did_you_mean


# Set to 1 by `cl_eval --allow-foreign-statistics` for the rollout workers and policy servers it starts,
# whose load_run_model calls then let foreign statistics through as the user asked.


@dataclass
class LoadedPolicy:
    """A run's model with its trained weights and the statistics to (un)normalize its inputs/outputs."""

    model: Any  # BaseVLAPolicy, on `device`, in eval mode
    normalizer: Any  # AlphaBrain.dataloader.Normalizer of the run's embodiment
    data_spec: Any  # AlphaBrain.dataloader.spec.DataSpec the model was built for
    cfg: Any  # the run's composed config (DictConfig)
    run_dir: Path
    run_id: str
    checkpoint: Path
    embodiment: str
    camera_keys: list[str] = field(default_factory=list)
    conditioning: Any = None  # model.task_conditioning.TaskConditioning of a task-conditioned checkpoint, else None
    stream_tasks: list[tuple[str, str]] = field(default_factory=list)  # (name, instruction) in training order

    @property
    def task_conditioned(self) -> str | None:
        """The kind of per-task parameters ("weight_masks", "parameter_sets"), None for a task-agnostic model."""
        return None if self.conditioning is None else self.conditioning.kind

    def task_position(self, task: str | None, instruction: str | None = None) -> int:
        """Stream position of a task given by its name in stream.json, or else by its instruction."""
        names = [name for name, _ in self.stream_tasks]
        instructions = [text for _, text in self.stream_tasks]
        if task in names:
            return names.index(task)
        for text in (instruction, task):
            if text in instructions:
                return instructions.index(text)
        given = task if task is not None else instruction
        raise UserError(
            f'Task "{given}" is not one this run trained on ({self.run_dir / STREAM_FILE}).'
            f"{did_you_mean(str(given), names)} A {self.task_conditioned} checkpoint needs the task's name or "
            f"instruction to pick its parameters; tasks: {', '.join(names) or 'none'}."
        )

    def select_task(self, task: str | None, instruction: str | None = None) -> int | None:
        """Make the model the one of the task named `task` (or with this instruction); returns the stream position
        applied, -1 for the model as trained (a task this checkpoint has not trained yet), None for a task-agnostic
        checkpoint."""
        if self.conditioning is None:
            return None
        return self.conditioning.select(self.model, self.task_position(task, instruction))


def _pick_embodiment(stats: Mapping[str, Any], used: list[str], requested: str | None, path: Path) -> str:
    """The embodiment to serve: the requested one, else the run's only one (data or statistics)."""
    if requested is not None:
        if requested not in stats:
            raise UserError(f'Embodiment "{requested}" is not in {path}.{did_you_mean(requested, stats)} '
                            f"It has: {', '.join(stats)}.")
        return requested
    used = sorted(set(used))
    if len(used) == 1 and used[0] in stats:
        return used[0]
    if len(stats) == 1:
        return next(iter(stats))
    raise UserError(
        f"The run's data mixes embodiments {used}; pick the one this policy serves with embodiment=... "
        f"(statistics for: {', '.join(stats)})."
    )


def _policy_spec_from_dataset(cfg: Any, run_dir: Path) -> dict:
    """For runs without policy_spec.json (written by older versions): read the shapes off the dataset."""
    from AlphaBrain.streams import build_task_stream

    try:
        stream = build_task_stream(cfg)
    except DatasetError as exc:
        raise DatasetError(
            f"Run {run_dir} has no policy_spec.json, so serving it needs its dataset for the camera layout and "
            f"shapes, and that failed: {exc}"
        ) from None
    spec = policy_spec(stream)
    spec["data_spec"] = stream.base_dataset.data_spec
    spec["embodiments"] = {k: tuple(v) for k, v in spec["embodiments"].items()}
    return spec


def torch_device(device: str) -> Any:
    """`torch.device(device)`; a malformed name or a CUDA device without CUDA is a UserError."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise UserError(f'Invalid device "{device}" ({exc}); use e.g. cpu, cuda, cuda:1.') from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f'Device "{device}" was requested but torch sees no CUDA GPU; use --device cpu.')
    return dev


def load_run_model(
    run_dir: str | Path,
    checkpoint: str | Path = "last",
    device: str = "cpu",
    embodiment: str | None = None,
    cache_merged: bool = False,
    allow_foreign_statistics: bool = False,
) -> LoadedPolicy:
    """Build the run's model from its config.yaml, load one checkpoint and the run's statistics.

    A LoRA checkpoint is merged into the base model in memory; with
    `cache_merged` the merged weights are also written next to it as
    `<prefix>_merged.pt` (several GB for the large models), which later loads
    pick up instead of merging again.

    Cheap checks (run dir, statistics file, checkpoint name) come before the
    dataset and the model are loaded, so a typo fails in milliseconds. Statistics
    computed on other data than the run trained on are refused unless
    `allow_foreign_statistics`.
    """
    import torch

    from AlphaBrain.config.loader import BASE_CONFIG, compose_config
    from AlphaBrain.dataloader import Normalizer, load_dataset_statistics
    from AlphaBrain.model import build_framework

    run = RunDir(run_dir)
    run.check_trained()
    weights = run.resolve_checkpoint(checkpoint)
    dev = torch_device(device)
    cfg = compose_config([BASE_CONFIG, run.config_file],
                         [f"datasets.vla_data.dataset_statistics={run.statistics_file}"])
    spec = run.read_policy_spec() or _policy_spec_from_dataset(cfg, run.path)
    stats = load_dataset_statistics(run.statistics_file, spec["embodiments"])
    run.check_statistics(allow_foreign_statistics, stats, spec)
    emb = _pick_embodiment(stats, list(spec["embodiments"]), embodiment, run.statistics_file)
    data_spec = spec["data_spec"]

    model = build_framework(cfg, data_spec)
    conditioning = _conditioning(weights)
    if conditioning is not None and weights.name.endswith(MERGED_SUFFIX):
        weights = weights.with_name(weights.name[: -len(MERGED_SUFFIX)] + LORA_DIR_SUFFIX)  # adapters swap unmerged
    if weights.is_dir():  # a LoRA adapter: merged into the freshly built base in memory
        from AlphaBrain.runs.lora_checkpoint import load_and_merge

        load_and_merge(model, weights, merge=conditioning is None)
        if cache_merged and conditioning is None:
            merged = weights.parent / (weights.name[: -len(LORA_DIR_SUFFIX)] + MERGED_SUFFIX)
            with atomic_path(merged) as tmp:
                torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    else:
        load_state_into(model, weights, f"was it written by a run of another architecture or config "
                                        f"than {run.config_file}?")
    model.to(dev).eval()
    return LoadedPolicy(
        model=model,
        normalizer=Normalizer(stats[emb]),
        data_spec=data_spec,
        cfg=cfg,
        run_dir=run.path,
        run_id=str(cfg.get("run_id") or run.path.name),
        checkpoint=weights,
        embodiment=emb,
        camera_keys=list(spec["camera_keys"]),
        conditioning=conditioning,
        stream_tasks=_stream_tasks(run) if conditioning is not None else [],
    )


def _conditioning(weights: Path) -> Any:
    """The per-task parameters stored with the checkpoint of `weights`, or None."""
    from AlphaBrain.model.task_conditioning import CONDITIONING_KEY, conditioning_from_checkpoint

    ckpt = checkpoint_of_weights(weights)
    algorithm = (ckpt.state.get("algorithm") or {}) if ckpt is not None else {}
    if not algorithm.get(CONDITIONING_KEY):  # the algorithm's tensors (e.g. EWC's Fisher) are not read for nothing
        return None
    return conditioning_from_checkpoint(algorithm, load_cl_tensors(ckpt))


def _stream_tasks(run: RunDir) -> list[tuple[str, str]]:
    """(name, instruction) of every trained task, in stream order."""
    import json

    names = run.stream_task_names()  # validates stream.json
    tasks = json.loads(run.stream_file.read_text())["tasks"]
    return [(name, str(t.get("instruction", name))) for name, t in zip(names, tasks)]

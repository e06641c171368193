"""A trained run's checkpoint as a policy with `infer(obs) -> dict`, in raw robot units.

    from AlphaBrain.deployment.policy import load_policy
    policy = load_policy("results/Checkpoints/<run_id>", "last")      # or "task_2_id2_steps_300", or a .pt path
    reply = policy.infer({"images": [agentview, wrist], "state": proprio, "prompt": "open the drawer"})
    reply["actions"]                                                  # float32 [action_horizon, action_dim]

Request (`obs`, one observation, not a batch):

    images                  list of HxWx3 uint8 arrays, or one uint8 array [n_cams, H, W, 3]; exactly
                            `metadata["num_cameras"]` cameras, in the training dataset's camera order
                            (`metadata["camera_keys"]`). Any H x W: frames are resized to the model's input.
      or, openpi style:
    observation/image       HxWx3 uint8: the first (third-person) camera
    observation/wrist_image HxWx3 uint8: the second camera; needed when the policy has 2 cameras,
                            ignored when it has 1
    state                   float[state_dim], RAW (unnormalized) proprioception; also `observation/state`.
                            May be omitted only when state_dim == 0.
    prompt                  str, the task instruction (`instruction` is accepted as an alias)

Reply:

    actions                 float32 [action_horizon, action_dim], RAW action units (unnormalized with the
                            run's dataset_statistics.json; binary gripper axes are exactly 0.0 or 1.0)
    policy_timing           {"infer_ms": float}: time spent in this call

A malformed request raises ValueError naming the key, what was expected and
what was found (a policy server sends that message back to its client).

The run directory is read as the trainer wrote it (DESIGN.md, "Checkpoints"):
`config.yaml` rebuilds the model, `dataset_statistics.json` (un)normalizes, and
`checkpoints/task_<k>_id<id>_steps_<N>_pytorch_model.pt` holds the weights. The
run's dataset must be readable too: it fixes the camera layout and the shapes
the model was built for (the same loading as `AlphaBrain.evaluation.offline_matrix`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from AlphaBrain.utils.atomic_io import atomic_path
from AlphaBrain.utils.errors import UserError, did_you_mean

__all__ = [
    "InferencePolicy",
    "LoadedPolicy",
    "load_policy",
    "load_run_model",
    "resolve_checkpoint",
    "statistics_missing_message",
]

_LAST = ("last", "latest")
_CKPT_SUFFIXES = ("_pytorch_model.pt", "_merged.pt", "_cl_state.json", "_cl_state.safetensors",
                  "_action_model.pt", "_lora_adapter")
_POSITION_RE = re.compile(r"^task_(\d+)$")


# ------------------------------------------------------------------------------------------ loading
def statistics_missing_message(run_dir: Path) -> str:
    return (
        f"{run_dir} has no dataset_statistics.json, so predicted actions cannot be unnormalized. Recompute it with: "
        f"python scripts/run_continual_learning_scripts/compute_dataset_statistics.py "
        f"--config {run_dir / 'config.yaml'} --out {run_dir / 'dataset_statistics.json'}"
    )


def _check_run_dir(run_dir: Path) -> None:
    if not run_dir.is_dir():
        raise UserError(f"Run directory {run_dir} does not exist (expected results/Checkpoints/<run_id>/).")
    if not (run_dir / "config.yaml").is_file():
        raise UserError(
            f"{run_dir} has no config.yaml: not a training run dir (expected results/Checkpoints/<run_id>/, "
            "as written by the continual trainer)."
        )
    if not (run_dir / "dataset_statistics.json").is_file():
        raise UserError(statistics_missing_message(run_dir))


def strip_checkpoint_suffix(name: str) -> str:
    for suffix in _CKPT_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _weights_for_prefix(ckpt_dir: Path, prefix: str) -> Path | None:
    """The weights of a checkpoint prefix: the full state dict, a merged LoRA file that is newer than its
    adapter, or else the LoRA adapter dir itself (merged in memory when loaded)."""
    full = ckpt_dir / f"{prefix}_pytorch_model.pt"
    if full.is_file():
        return full
    adapter = ckpt_dir / f"{prefix}_lora_adapter"
    merged = ckpt_dir / f"{prefix}_merged.pt"
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
    from AlphaBrain.training.continual_learning import checkpointing as ckpt_io

    run_dir = Path(run_dir)
    ckpt_dir = run_dir / "checkpoints"
    text = str(name_or_path).strip()
    complete = ckpt_io.list_complete_checkpoints(ckpt_dir)
    names = [c.prefix.name for c in complete]

    for candidate in (Path(text), run_dir / text, ckpt_dir / text):
        if candidate.is_file():
            if candidate.suffix in (".pt", ".pth", ".bin"):
                return candidate.resolve()
            text = candidate.name  # e.g. a checkpoint's _cl_state.json: resolved by its prefix below
            break
        if candidate.is_dir() and candidate.name.endswith("_lora_adapter"):
            return candidate.resolve()

    if text.lower() in _LAST:
        if not complete:
            raise UserError(f"No complete task checkpoint in {ckpt_dir}: has the run finished its first task?")
        chosen = complete[-1]
        weights = _weights_for_prefix(ckpt_dir, chosen.prefix.name)
        if weights is None:
            raise UserError(f"Checkpoint {chosen.prefix.name} in {ckpt_dir} has no weights file.")
        return weights.resolve()

    position = _POSITION_RE.match(text)
    if position:
        k = int(position.group(1))
        matches = [c for c in complete if c.position == k]
        if not matches:
            raise UserError(
                f"No complete checkpoint for task position {k} in {ckpt_dir}; available: {', '.join(names) or 'none'}."
            )
        text = matches[0].prefix.name

    prefix = strip_checkpoint_suffix(Path(text).name)
    weights = _weights_for_prefix(ckpt_dir, prefix)
    if weights is not None:
        complete_marker = ckpt_dir / f"{prefix}_cl_state.json"
        if not complete_marker.is_file() and not weights.name.endswith("_merged.pt"):
            raise UserError(
                f"Checkpoint {prefix} in {ckpt_dir} is incomplete (its _cl_state.json is missing: the save was "
                f"interrupted). Complete checkpoints: {', '.join(names) or 'none'}."
            )
        return weights.resolve()
    raise UserError(
        f'Unknown checkpoint "{text}" for run {run_dir}.{did_you_mean(prefix, names)} '
        f"Available: {', '.join(names) or 'none'} (or \"last\", \"task_<k>\", or a path to a .pt file)."
    )


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
    from AlphaBrain.training.continual_learning.datasets import build_task_stream
    from AlphaBrain.training.continual_learning.run_setup import policy_spec
    from AlphaBrain.utils.errors import DatasetError

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


def _torch_device(device: str) -> Any:
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise UserError(f'Invalid device "{device}" ({exc}); use e.g. cpu, cuda, cuda:1.') from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f'Device "{device}" was requested but torch sees no CUDA GPU; use --device cpu.')
    return dev


def _load_full_state(model: Any, weights: Path, run_dir: Path) -> None:
    import torch

    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, foreign or pickled-object file
        raise UserError(f"Cannot load checkpoint {weights}: {exc}") from None
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise UserError(
            f"{weights.name} does not fit the {type(model).__name__} model that {run_dir / 'config.yaml'} builds "
            f"({first}); was it written by a run of another architecture or config?"
        ) from None


def load_run_model(
    run_dir: str | Path,
    checkpoint: str | Path = "last",
    device: str = "cpu",
    embodiment: str | None = None,
    cache_merged: bool = False,
) -> LoadedPolicy:
    """Build the run's model from its config.yaml, load one checkpoint and the run's statistics.

    A LoRA checkpoint is merged into the base model in memory; with
    `cache_merged` the merged weights are also written next to it as
    `<prefix>_merged.pt` (several GB for the large models), which later loads
    pick up instead of merging again.

    Cheap checks (run dir, statistics file, checkpoint name) come before the
    dataset and the model are loaded, so a typo fails in milliseconds.
    """
    import torch

    from AlphaBrain.config.loader import BASE_CONFIG, compose_config
    from AlphaBrain.dataloader import Normalizer, load_dataset_statistics
    from AlphaBrain.model import build_framework
    from AlphaBrain.training.continual_learning.run_setup import read_policy_spec

    run_dir = Path(run_dir)
    _check_run_dir(run_dir)
    weights = resolve_checkpoint(run_dir, checkpoint)
    dev = _torch_device(device)
    stats_path = run_dir / "dataset_statistics.json"
    cfg = compose_config([BASE_CONFIG, run_dir / "config.yaml"],
                         [f"datasets.vla_data.dataset_statistics={stats_path}"])
    spec = read_policy_spec(run_dir) or _policy_spec_from_dataset(cfg, run_dir)
    stats = load_dataset_statistics(stats_path, spec["embodiments"])
    emb = _pick_embodiment(stats, list(spec["embodiments"]), embodiment, stats_path)
    normalizer = Normalizer(stats[emb])
    data_spec = spec["data_spec"]

    model = build_framework(cfg, data_spec)
    if weights.is_dir():  # a LoRA adapter: merged into the freshly built base in memory
        from AlphaBrain.training.trainer_utils.peft import load_and_merge

        load_and_merge(model, weights)
        if cache_merged:
            merged = weights.parent / (weights.name[: -len("_lora_adapter")] + "_merged.pt")
            with atomic_path(merged) as tmp:
                torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    else:
        _load_full_state(model, weights, run_dir)
    model.to(dev).eval()
    return LoadedPolicy(
        model=model,
        normalizer=normalizer,
        data_spec=data_spec,
        cfg=cfg,
        run_dir=run_dir,
        run_id=str(cfg.get("run_id") or run_dir.name),
        checkpoint=weights,
        embodiment=emb,
        camera_keys=list(spec["camera_keys"]),
    )


# ---------------------------------------------------------------------------------------- inference
def _as_image(x: Any, key: str) -> np.ndarray:
    im = np.asarray(x)
    if im.dtype != np.uint8:
        raise ValueError(f"'{key}': expected a uint8 HxWx3 image, got dtype {im.dtype} (convert with .astype(np.uint8)).")
    if im.ndim != 3 or im.shape[-1] != 3:
        hint = " (channels-first? send HxWx3)" if im.ndim == 3 and im.shape[0] == 3 else ""
        raise ValueError(f"'{key}': expected an HxWx3 image, got shape {list(im.shape)}{hint}.")
    if im.shape[0] < 1 or im.shape[1] < 1:
        raise ValueError(f"'{key}': empty image of shape {list(im.shape)}.")
    return im


class InferencePolicy:
    """`infer(obs) -> {"actions", "policy_timing"}` around a model + Normalizer (see the module docstring).

    Not safe for concurrent calls from several threads on one instance; the
    policy server serializes them.
    """

    def __init__(
        self,
        model: Any,
        normalizer: Any,
        *,
        run_id: str = "",
        checkpoint: str = "",
        camera_keys: Sequence[str] = (),
        embodiment: str = "",
    ) -> None:
        self.model = model
        self.normalizer = normalizer
        self.num_cameras = int(model.num_cameras)
        self.state_dim = int(model.state_dim)
        self.action_dim = int(model.action_dim)
        self.action_horizon = int(model.action_horizon)
        if normalizer.action_dim != self.action_dim:
            raise UserError(
                f"The statistics have {normalizer.action_dim} action dims but the model predicts {self.action_dim}; "
                "they come from different datasets."
            )
        spec = getattr(model, "data_spec", None)
        self.image_size = [int(v) for v in getattr(spec, "image_size", None) or (0, 0)]
        self._metadata = {
            "run_id": str(run_id),
            "checkpoint": str(checkpoint),
            "framework": type(model).__name__,
            "embodiment": str(embodiment),
            "action_horizon": self.action_horizon,
            "action_dim": self.action_dim,
            "state_dim": self.state_dim,
            "num_cameras": self.num_cameras,
            "image_size": self.image_size,
            "camera_keys": [str(k) for k in camera_keys],
            "state_space": "raw",
            "action_space": "raw",
        }

    @classmethod
    def from_loaded(cls, loaded: LoadedPolicy) -> InferencePolicy:
        return cls(
            loaded.model,
            loaded.normalizer,
            run_id=loaded.run_id,
            checkpoint=strip_checkpoint_suffix(loaded.checkpoint.name),
            camera_keys=loaded.camera_keys,
            embodiment=loaded.embodiment,
        )

    @property
    def metadata(self) -> dict:
        """What a client needs to build requests: shapes, camera order, run and checkpoint names."""
        return dict(self._metadata)

    def reset(self) -> None:
        """Nothing to reset: the policy is stateless between calls (openpi BasePolicy interface)."""

    # ---- request parsing ----------------------------------------------------------------------
    def _images(self, obs: Mapping[str, Any]) -> list[np.ndarray]:
        if "images" in obs:
            raw = obs["images"]
            if isinstance(raw, np.ndarray) and raw.ndim == 3:
                raw = [raw]  # one camera sent without the list
            if isinstance(raw, np.ndarray) and raw.ndim == 4:
                raw = list(raw)
            if not isinstance(raw, (list, tuple)):
                raise ValueError(
                    f"'images': expected a list of HxWx3 uint8 arrays or an array [n_cams, H, W, 3], "
                    f"got {type(raw).__name__}{' of shape ' + str(list(raw.shape)) if isinstance(raw, np.ndarray) else ''}."
                )
            if len(raw) != self.num_cameras:
                raise ValueError(
                    f"'images': got {len(raw)} camera image(s), this policy takes {self.num_cameras} "
                    f"(cameras in order: {', '.join(self._metadata['camera_keys']) or 'see metadata'})."
                )
            return [_as_image(im, f"images[{i}]") for i, im in enumerate(raw)]
        if "observation/image" in obs:
            keys = ["observation/image", "observation/wrist_image"][: self.num_cameras]
            if self.num_cameras > len(keys):
                raise ValueError(
                    f"this policy takes {self.num_cameras} cameras; openpi-style keys give at most 2 "
                    "(observation/image, observation/wrist_image): send 'images' as a list instead."
                )
            missing = [k for k in keys if k not in obs]
            if missing:
                raise ValueError(
                    f"this policy takes {self.num_cameras} cameras: missing {', '.join(repr(k) for k in missing)}."
                )
            return [_as_image(obs[k], k) for k in keys]
        raise ValueError(
            f"missing camera images: send 'images' (a list of {self.num_cameras} HxWx3 uint8 arrays) or "
            f"'observation/image' (+ 'observation/wrist_image'). Keys received: {sorted(map(str, obs))}."
        )

    def _state(self, obs: Mapping[str, Any]) -> np.ndarray:
        key = "state" if "state" in obs else "observation/state" if "observation/state" in obs else None
        if key is None:
            if self.state_dim == 0:
                return np.zeros(0, dtype=np.float32)
            raise ValueError(
                f"missing 'state' (or 'observation/state'): this policy takes {self.state_dim} raw proprioception "
                f"values. Keys received: {sorted(map(str, obs))}."
            )
        try:
            state = np.asarray(obs[key], dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise ValueError(f"'{key}': expected {self.state_dim} numbers, got {type(obs[key]).__name__}.") from None
        if state.shape[0] != self.state_dim:
            raise ValueError(f"'{key}': got {state.shape[0]} values, this policy takes state_dim={self.state_dim}.")
        if not np.all(np.isfinite(state)):
            raise ValueError(f"'{key}' contains NaN or infinite values: {state.tolist()}.")
        if self.state_dim == 0:
            return state.astype(np.float32)
        return self.normalizer.normalize_state(state)

    @staticmethod
    def _prompt(obs: Mapping[str, Any]) -> str:
        key = "prompt" if "prompt" in obs else "instruction" if "instruction" in obs else None
        if key is None:
            raise ValueError(
                f"missing 'prompt': the task instruction as a str. Keys received: {sorted(map(str, obs))}."
            )
        text = obs[key]
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        if isinstance(text, np.ndarray) and text.dtype.kind in "US" and text.size == 1:
            text = str(text.reshape(-1)[0])
        if not isinstance(text, str):
            raise ValueError(f"'{key}': expected the instruction as a str, got {type(text).__name__}.")
        return text

    # ---- the call ---------------------------------------------------------------------------------
    def infer(self, obs: Mapping[str, Any]) -> dict:
        """One observation in, one raw-unit action chunk out (see the module docstring for the keys)."""
        start = time.perf_counter()
        if not isinstance(obs, Mapping):
            raise ValueError(f"the request must be a dict of observation keys, got {type(obs).__name__}.")
        example = {"image": self._images(obs), "state": self._state(obs), "lang": self._prompt(obs)}
        normalized = self.model.predict_action([example])
        chunk = np.asarray(normalized, dtype=np.float32)
        if chunk.shape != (1, self.action_horizon, self.action_dim):
            raise RuntimeError(
                f"model returned actions of shape {list(chunk.shape)}, expected [1, {self.action_horizon}, "
                f"{self.action_dim}]"
            )
        actions = np.ascontiguousarray(self.normalizer.unnormalize_action(chunk[0]), dtype=np.float32)
        return {"actions": actions, "policy_timing": {"infer_ms": (time.perf_counter() - start) * 1000.0}}


def load_policy(
    run_dir: str | Path, checkpoint_name_or_path: str | Path = "last", device: str = "cpu",
    embodiment: str | None = None, cache_merged: bool = False,
) -> InferencePolicy:
    """Load one checkpoint of a run as an InferencePolicy (see `resolve_checkpoint` for the names)."""
    return InferencePolicy.from_loaded(
        load_run_model(run_dir, checkpoint_name_or_path, device, embodiment, cache_merged=cache_merged)
    )

"""A trained run's checkpoint as a policy with `infer(obs) -> dict`, in raw robot units.

    from AlphaBrain.deployment.policy import load_policy
    policy = load_policy("results/Checkpoints/<run_id>", "last")      # or "task_2_id2_steps_300", or a .pt path
    reply = policy.infer({"images": [agentview, wrist], "state": proprio, "prompt": "open the drawer"})
    reply["actions"]                                                  # float32 [action_horizon, action_dim]
    replies = policy.infer_batch([obs_a, obs_b])                      # one forward, one reply per observation

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
    task_name               str, optional: the task's name in the run's stream.json. A task-conditioned
                            checkpoint (PackNet masks, per-task LoRA adapters; `metadata["task_conditioned"]`)
                            runs each observation with its task's parameters, found by this name or else
                            by the prompt; an unknown task is an error listing the run's tasks.

Reply:

    actions                 float32 [action_horizon, action_dim], RAW action units (unnormalized with the
                            run's dataset_statistics.json; binary gripper axes are exactly 0.0 or 1.0)
    policy_timing           {"infer_ms": float}: time spent in this call

A malformed request raises ValueError naming the key, what was expected and
what was found (a policy server sends that message back to its client).

The run directory is read by the run layer (`AlphaBrain.runs.load_run_model`): this module
only adapts requests and replies around the loaded model.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from AlphaBrain.runs import LoadedPolicy, load_run_model, strip_checkpoint_suffix
from AlphaBrain.utils.errors import UserError

__all__ = ["InferencePolicy", "load_policy"]


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
        select_task: Any = None,
        task_conditioned: str | None = None,
        tasks: Sequence[str] = (),
    ) -> None:
        self.model = model
        self.normalizer = normalizer
        # task (name or instruction) -> puts that task's parameters in the model; None for a task-agnostic checkpoint
        self._select_task = select_task if task_conditioned else None
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
            "task_conditioned": task_conditioned,
            "tasks": [str(t) for t in tasks],
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
            select_task=loaded.select_task,
            task_conditioned=loaded.task_conditioned,
            tasks=[name for name, _ in loaded.stream_tasks],
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
        return self.infer_batch([obs])[0]

    def infer_batch(self, batch: Sequence[Mapping[str, Any]]) -> list[dict]:
        """Several observations in one forward: one reply per observation, in order.

        A malformed observation raises ValueError for the whole call (naming its position when the
        batch has several); `policy_timing` is the time of the whole call, shared by its replies.
        """
        start = time.perf_counter()
        examples = []
        for i, obs in enumerate(batch):
            try:
                examples.append(self._example(obs))
            except ValueError as exc:
                raise ValueError(f"request {i} of {len(batch)}: {exc}" if len(batch) > 1 else str(exc)) from None
        if not examples:
            return []
        chunks = self._predict(examples, batch)
        timing = {"infer_ms": (time.perf_counter() - start) * 1000.0}
        return [
            {"actions": np.ascontiguousarray(self.normalizer.unnormalize_action(chunk), dtype=np.float32),
             "policy_timing": dict(timing)}
            for chunk in chunks
        ]

    def _predict(self, examples: list[dict], batch: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Normalized chunks [B, horizon, action_dim]: one forward, or one per task for a task-conditioned model."""
        if self._select_task is None:
            return self._forward(examples)
        groups: dict[tuple, list[int]] = {}  # (task name or None, instruction) -> rows
        for i, (obs, ex) in enumerate(zip(batch, examples)):
            task = obs.get("task_name")
            groups.setdefault((str(task) if task else None, ex["lang"]), []).append(i)
        chunks = np.empty((len(examples), self.action_horizon, self.action_dim), dtype=np.float32)
        for key, rows in groups.items():
            try:
                self._select_task(*key)
            except UserError as exc:
                raise ValueError(str(exc)) from None
            chunks[rows] = self._forward([examples[i] for i in rows])
        return chunks

    def _forward(self, examples: list[dict]) -> np.ndarray:
        out = np.asarray(self.model.predict_action(examples), dtype=np.float32)
        expected = (len(examples), self.action_horizon, self.action_dim)
        if out.shape != expected:
            raise RuntimeError(f"model returned actions of shape {list(out.shape)}, expected {list(expected)}")
        return out

    def _example(self, obs: Mapping[str, Any]) -> dict:
        if not isinstance(obs, Mapping):
            raise ValueError(f"the request must be a dict of observation keys, got {type(obs).__name__}.")
        return {"image": self._images(obs), "state": self._state(obs), "lang": self._prompt(obs)}


def load_policy(
    run_dir: str | Path, checkpoint_name_or_path: str | Path = "last", device: str = "cpu",
    embodiment: str | None = None, cache_merged: bool = False, allow_foreign_statistics: bool = False,
) -> InferencePolicy:
    """Load one checkpoint of a run as an InferencePolicy (see `resolve_checkpoint` for the names)."""
    return InferencePolicy.from_loaded(
        load_run_model(run_dir, checkpoint_name_or_path, device, embodiment, cache_merged=cache_merged,
                       allow_foreign_statistics=allow_foreign_statistics)
    )

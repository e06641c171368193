"""The contract every VLA framework satisfies, and the shared sample collation.

A policy takes a *list of sample dicts* (see DESIGN.md, "A training sample"):

    image          list of HxWx3 uint8 arrays, one per camera, in the dataset's camera order
    lang           str, the task instruction
    state          float32[state_dim], normalized proprioception
    action         float32[horizon, action_dim], normalized action chunk (training only)
    action_mask    bool[horizon], optional: False marks padded steps past an episode's end

Other keys (task_id, episode_index, ...) are ignored. The methods are

    forward(examples)               -> {"action_loss": scalar tensor, ...}      (training)
    per_sample_action_loss(examples)-> Tensor[B]                                (unreduced, same computation)
    action_outputs(examples)        -> Tensor[B, horizon, action_dim]           (differentiable, for distillation)
    predict_action(examples)        -> np.ndarray[B, horizon, action_dim]       (normalized, no grad, eval mode)

`forward` reduces exactly what `per_sample_action_loss` computes (the mean over
the batch), so algorithms that rank samples by loss (MIR) see the same numbers
the optimizer sees. The trainer gives learning rates per *top-level child
module* (`trainer.learning_rate.<child name>`), so frameworks keep their parts
as clearly named direct children.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from AlphaBrain.dataloader.spec import DataSpec
from AlphaBrain.utils.errors import ConfigError, DatasetError


@dataclass
class PolicyBatch:
    """A collated batch, on the policy's device."""

    images: torch.Tensor  # float32 [B, num_cameras, 3, H, W], values in [0, 1]
    lang: list[str]
    state: torch.Tensor  # float32 [B, state_dim]
    action: torch.Tensor | None  # float32 [B, horizon, action_dim]
    action_mask: torch.Tensor | None  # bool [B, horizon]

    @property
    def batch_size(self) -> int:
        return int(self.images.shape[0])


def _as_camera_list(image: Any, index: int) -> list[np.ndarray]:
    if isinstance(image, np.ndarray):
        if image.ndim == 3:  # a single camera given without the list
            return [image]
        if image.ndim == 4:  # cameras stacked in one array
            return list(image)
    if isinstance(image, (list, tuple)):
        return [np.asarray(im) for im in image]
    raise DatasetError(
        f"Sample {index}: 'image' must be a list of HxWx3 uint8 arrays (one per camera), "
        f"got {type(image).__name__}."
    )


def _check_image(im: np.ndarray, index: int, camera: int) -> np.ndarray:
    if im.ndim != 3 or im.shape[-1] != 3:
        raise DatasetError(
            f"Sample {index}, camera {camera}: expected an HxWx3 image, got shape {tuple(im.shape)}."
        )
    return im


def collate_examples(
    examples: Sequence[Mapping[str, Any]],
    *,
    num_cameras: int,
    state_dim: int,
    image_size: tuple[int, int],
    action_horizon: int,
    action_dim: int,
    device: torch.device | str = "cpu",
    require_action: bool,
) -> PolicyBatch:
    """Turn sample dicts into tensors: images resized to `image_size`, masks defaulted to all-True.

    Images are resized (bilinear, antialiased) only when their size differs from
    `image_size`; uint8 images are scaled to [0, 1], float images are taken as
    already in [0, 1].
    """
    if len(examples) == 0:
        raise ValueError("Cannot collate an empty list of examples.")
    batch = len(examples)
    height, width = image_size

    # ---- images: one stack per camera (cameras may differ in size) ----------------------------
    per_camera: list[list[np.ndarray]] = [[] for _ in range(num_cameras)]
    for i, ex in enumerate(examples):
        if "image" not in ex:
            raise DatasetError(f"Sample {i} has no 'image' key; keys found: {sorted(ex)}.")
        cams = _as_camera_list(ex["image"], i)
        if len(cams) != num_cameras:
            raise DatasetError(
                f"Sample {i} has {len(cams)} camera image(s) but the policy was built for "
                f"{num_cameras} (DataSpec.num_cameras); check the dataset's camera keys."
            )
        for c, im in enumerate(cams):
            per_camera[c].append(_check_image(im, i, c))
    stacks = []
    for c, ims in enumerate(per_camera):
        shapes = {im.shape for im in ims}
        if len(shapes) != 1:
            raise DatasetError(f"Camera {c} images differ in shape within the batch: {sorted(shapes)}.")
        arr = np.stack(ims)
        x = torch.from_numpy(arr).to(device)
        x = x.permute(0, 3, 1, 2)
        x = x.float().div_(255.0) if arr.dtype == np.uint8 else x.float()
        if tuple(x.shape[-2:]) != (height, width):
            x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
        stacks.append(x)
    images = torch.stack(stacks, dim=1).contiguous()

    # ---- text -------------------------------------------------------------------------------------
    lang = []
    for i, ex in enumerate(examples):
        text = ex.get("lang", "")
        if not isinstance(text, str):
            raise DatasetError(f"Sample {i}: 'lang' must be a str, got {type(text).__name__}.")
        lang.append(text)

    # ---- state ------------------------------------------------------------------------------------
    if state_dim == 0:
        state = torch.zeros(batch, 0, device=device)
    else:
        rows = []
        for i, ex in enumerate(examples):
            if "state" not in ex:
                raise DatasetError(f"Sample {i} has no 'state' key but the policy expects state_dim={state_dim}.")
            s = np.asarray(ex["state"], dtype=np.float32).reshape(-1)
            if s.shape[0] != state_dim:
                raise DatasetError(
                    f"Sample {i}: 'state' has {s.shape[0]} values, the policy expects {state_dim} (DataSpec.state_dim)."
                )
            rows.append(s)
        state = torch.from_numpy(np.stack(rows)).to(device)

    # ---- action + mask ----------------------------------------------------------------------------
    action = mask = None
    if require_action:
        acts, masks = [], []
        for i, ex in enumerate(examples):
            if "action" not in ex:
                raise DatasetError(f"Sample {i} has no 'action' key; training needs the action chunk.")
            a = np.asarray(ex["action"], dtype=np.float32)
            if a.shape != (action_horizon, action_dim):
                raise DatasetError(
                    f"Sample {i}: 'action' has shape {tuple(a.shape)}, the policy expects "
                    f"({action_horizon}, {action_dim}) = (framework.action_model.action_horizon, DataSpec.action_dim)."
                )
            acts.append(a)
            m = ex.get("action_mask")
            if m is None:
                m = np.ones(action_horizon, dtype=bool)
            else:
                m = np.asarray(m, dtype=bool).reshape(-1)
                if m.shape[0] != action_horizon:
                    raise DatasetError(
                        f"Sample {i}: 'action_mask' has {m.shape[0]} entries, expected {action_horizon}."
                    )
            masks.append(m)
        action = torch.from_numpy(np.stack(acts)).to(device)
        mask = torch.from_numpy(np.stack(masks)).to(device)
    return PolicyBatch(images=images, lang=lang, state=state, action=action, action_mask=mask)


def masked_chunk_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """Per-sample loss [B]: the elementwise loss averaged over the valid (unmasked) steps and all action dims.

    A sample with no valid step contributes 0.
    """
    if kind == "l1":
        err = (pred - target).abs()
    elif kind == "mse":
        err = (pred - target).square()
    elif kind == "huber":
        err = F.smooth_l1_loss(pred, target, reduction="none", beta=1.0)
    else:  # pragma: no cover - configs validate the choice
        raise ValueError(f"unknown loss {kind!r}")
    weights = mask.to(err.dtype).unsqueeze(-1)  # [B, H, 1]
    total = (err * weights).sum(dim=(1, 2))
    count = weights.sum(dim=(1, 2)) * err.shape[-1]
    return total / count.clamp_min(1.0)


class BaseVLAPolicy(nn.Module, abc.ABC):
    """Base class of every VLA framework (see the module docstring for the contract).

    Subclasses implement `from_config`, `per_sample_action_loss` and `_predict`.
    """

    #: True for frameworks that cannot be built without downloaded backbone weights.
    #: Contract tests run on every registered framework where this is False.
    needs_pretrained_weights: ClassVar[bool] = False

    def __init__(self, data_spec: DataSpec, action_horizon: int | None = None) -> None:
        super().__init__()
        if not isinstance(data_spec, DataSpec):
            raise TypeError(f"data_spec must be a DataSpec, got {type(data_spec).__name__}")
        self.data_spec = data_spec
        self.action_horizon = int(action_horizon if action_horizon is not None else data_spec.action_horizon)
        self.action_dim = int(data_spec.action_dim)
        self.state_dim = int(data_spec.state_dim)
        self.num_cameras = int(data_spec.num_cameras)

    # ---- construction -----------------------------------------------------------------------------

    @classmethod
    @abc.abstractmethod
    def from_config(cls, cfg: Any, data_spec: DataSpec) -> "BaseVLAPolicy":
        """Build from the whole run config (reads `cfg.framework`) and the data's shapes."""

    @staticmethod
    def check_action_horizon(configured: int, data_spec: DataSpec) -> None:
        """The dataset's chunk length must equal `framework.action_model.action_horizon`."""
        if configured != data_spec.action_horizon:
            raise ConfigError(
                f"framework.action_model.action_horizon = {configured} but the dataset gives action chunks "
                f"of {data_spec.action_horizon} steps (DataSpec.action_horizon); build the dataset with the "
                f"same horizon."
            )

    # ---- the contract -----------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    @abc.abstractmethod
    def per_sample_action_loss(self, examples: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        """Unreduced action loss, one value per sample: Tensor[B] (with grad in training)."""

    def forward(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """Training step loss: {"action_loss": mean of `per_sample_action_loss`}."""
        per_sample = self.per_sample_action_loss(examples)
        return {"action_loss": per_sample.mean()}

    @abc.abstractmethod
    def _predict(self, examples: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        """Action chunks [B, horizon, action_dim]; called in eval mode under no_grad."""

    def action_outputs(self, examples: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        """The policy's differentiable output for distillation methods (DER++, LwF): Tensor[B, horizon, action_dim].

        Runs in the current mode with autograd. For a head that regresses the chunk
        this is the predicted chunk; a stochastic head (flow matching, diffusion)
        overrides it with an output that is a deterministic function of the sample,
        e.g. the velocity at a noise and time seeded by the sample's identity, so that
        a stored output can be matched later.
        """
        return self._predict(examples)

    def predict_action(self, examples: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Normalized action chunks as float32 numpy [B, horizon, action_dim].

        Runs in eval mode (no augmentation, no dropout) without gradients, and puts
        the module back in the mode it was in, so a mid-training evaluation does
        not change training behaviour.
        """
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                actions = self._predict(examples)
        finally:
            self.train(was_training)
        return actions.detach().to("cpu", torch.float32).numpy()

    def collate(
        self,
        examples: Sequence[Mapping[str, Any]],
        *,
        require_action: bool,
        image_size: tuple[int, int] | None = None,
    ) -> PolicyBatch:
        """Collate samples for this policy (shapes from its DataSpec) onto its device.

        Images are resized to `image_size` (default: the DataSpec's stored frame size).
        """
        return collate_examples(
            examples,
            num_cameras=self.num_cameras,
            state_dim=self.state_dim,
            image_size=tuple(image_size) if image_size is not None else tuple(self.data_spec.image_size),
            action_horizon=self.action_horizon,
            action_dim=self.action_dim,
            device=self.device,
            require_action=require_action,
        )

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

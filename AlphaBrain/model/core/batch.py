"""Collation: a list of sample dicts -> one `PolicyBatch` of tensors on a device.

A sample (see DESIGN.md, "A training sample") is a dict with

    image          list of HxWx3 uint8 arrays, one per camera, in the dataset's camera order
    lang           str, the task instruction
    state          float32[state_dim], normalized proprioception
    action         float32[horizon, action_dim], normalized action chunk (training only)
    action_mask    bool[horizon], optional: False marks padded steps past an episode's end

Other keys (task_id, episode_index, ...) are ignored. A wrong shape is a
`DatasetError` naming the sample and the expected shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from AlphaBrain.utils.errors import DatasetError


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

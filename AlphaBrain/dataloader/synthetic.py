"""A small, deterministic, learnable LeRobot dataset for tests and the smoke job.

Task k = "push the <color> block <direction>": a colored square (the task's
color) starts at a random position and is pushed along the task's direction.
What a policy must learn:

* action[0:2]  velocity = 0.02 * direction + a small task-dependent wiggle
* action[2:-1] smooth functions of the phase and the task
* action[-1]   gripper, exactly 0 in the first half of the episode and 1 after
* state        [x, y, phase, gripper at the previous step, cos features...]
* image        the block (task color) at (x, y); the gripper shows as a bar at the bottom

Episodes cycle through the tasks (episode e has task e % num_tasks).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from AlphaBrain.dataloader.lerobot_writer import LeRobotDatasetWriter
from AlphaBrain.utils.errors import DatasetError

SYNTHETIC_EMBODIMENT = "synthetic"
_MARKER = "alphabrain_synthetic"  # extra info.json key: the parameters that made the dataset

COLORS = [
    ("red", (220, 40, 40)), ("green", (40, 200, 60)), ("blue", (50, 80, 230)), ("yellow", (230, 210, 40)),
    ("purple", (150, 60, 200)), ("orange", (240, 140, 30)), ("cyan", (40, 210, 210)), ("white", (235, 235, 235)),
]
DIRECTIONS = [("left", (-1.0, 0.0)), ("right", (1.0, 0.0)), ("up", (0.0, -1.0)), ("down", (0.0, 1.0))]


def synthetic_task(k: int) -> tuple[str, tuple[int, int, int], np.ndarray]:
    """(instruction, RGB color, unit direction) of task k; distinct instructions for every k."""
    color_name, rgb = COLORS[k % len(COLORS)]
    dir_name, direction = DIRECTIONS[(k + k // len(COLORS)) % len(DIRECTIONS)]
    text = f"push the {color_name} block {dir_name}"
    if k >= len(COLORS) * len(DIRECTIONS):
        text += f" (variant {k // (len(COLORS) * len(DIRECTIONS))})"
    return text, rgb, np.asarray(direction)


def _episode(rng, k, length, state_dim, action_dim):
    _, _, direction = synthetic_task(k)
    perp = np.array([-direction[1], direction[0]])
    # Strictly inside (0, 1): a state axis spanning exactly [0, 1] would be taken
    # for a binary gripper axis by the statistics (q01 == 0 and q99 == 1).
    phase = (np.arange(length) + 0.5) / length
    pos = np.empty((length, 2))
    pos[0] = rng.uniform(0.3, 0.7, size=2)
    action = np.zeros((length, action_dim))
    for t in range(length):
        vel = 0.02 * direction + 0.01 * np.sin(2 * np.pi * phase[t] + k) * perp
        action[t, :2] = vel
        if t + 1 < length:
            pos[t + 1] = np.clip(pos[t] + vel, 0.05, 0.95)
    for j in range(2, action_dim - 1):
        action[:, j] = 0.5 * np.sin(2 * np.pi * phase + k + j)
    action[:, -1] = (phase >= 0.5).astype(np.float64)
    prev_grip = np.concatenate([[0.0], action[:-1, -1]])
    cols = [pos[:, 0], pos[:, 1], phase, prev_grip]
    cols += [np.cos(2 * np.pi * phase * (j + 1) + k) for j in range(max(0, state_dim - 4))]
    state = np.stack(cols[:state_dim], axis=1)
    return pos, state.astype(np.float32), action.astype(np.float32)


def _render(pos, grip, rgb, size, wrist):
    h, w = size
    t = len(pos)
    yy, xx = np.mgrid[0:h, 0:w]
    yy, xx = (yy[None] + 0.5) / h, (xx[None] + 0.5) / w
    img = np.empty((t, h, w, 3), dtype=np.uint8)
    # A fixed gradient background, so the image is not mostly one flat value.
    img[...] = np.stack([40 + 30 * xx[0], 40 + 30 * yy[0], np.full((h, w), 55.0)], -1).astype(np.uint8)
    if wrist:  # a close-up: the block is large and the view moves with it
        cx, cy, half = 0.5 + 0.3 * (0.5 - pos[:, 0]), 0.5 + 0.3 * (0.5 - pos[:, 1]), 0.25
    else:
        cx, cy, half = pos[:, 0], pos[:, 1], 0.1
    block = (np.abs(xx - cx[:, None, None]) <= half) & (np.abs(yy - cy[:, None, None]) <= half)
    img[block] = rgb
    bar = (yy >= 0.9) & np.ones((t, 1, 1), dtype=bool) & (grip[:, None, None] > 0.5)
    img[bar] = (250, 250, 250)
    return img


def write_synthetic_dataset(
    root: str | Path,
    *,
    num_tasks: int = 3,
    episodes_per_task: int = 4,
    episode_length: int = 20,
    image_size: tuple[int, int] = (32, 32),
    state_dim: int = 4,
    action_dim: int = 4,
    version: str = "v3.0",
    image_storage: str = "image",
    seed: int = 0,
    cameras: tuple[str, ...] = ("image",),
    overwrite: bool = False,
) -> Path:
    """Write (or reuse, if the same parameters already made it) a synthetic dataset at `root`."""
    if num_tasks < 1 or episodes_per_task < 1 or episode_length < 2:
        raise ValueError("need num_tasks >= 1, episodes_per_task >= 1, episode_length >= 2")
    if action_dim < 3 or state_dim < 2:
        raise ValueError("the synthetic task needs action_dim >= 3 (x, y, ..., gripper) and state_dim >= 2")
    root = Path(root)
    params = {
        "num_tasks": num_tasks, "episodes_per_task": episodes_per_task, "episode_length": episode_length,
        "image_size": list(image_size), "state_dim": state_dim, "action_dim": action_dim, "version": version,
        "image_storage": image_storage, "seed": seed, "cameras": list(cameras),
    }
    info_path = root / "meta" / "info.json"
    if root.exists() and not overwrite:
        try:
            if json.loads(info_path.read_text()).get(_MARKER) == params:
                return root  # same parameters, same (deterministic) content
        except (OSError, ValueError):
            pass
        raise DatasetError(f"{root} already exists and is not this synthetic dataset; pass overwrite=True")

    rng = np.random.default_rng(seed)
    writer = LeRobotDatasetWriter(
        root, fps=10, robot_type=SYNTHETIC_EMBODIMENT, state_dim=state_dim, action_dim=action_dim,
        cameras={c: tuple(image_size) for c in cameras}, version=version, image_storage=image_storage,
        overwrite=True,
    )
    with writer:
        for e in range(num_tasks * episodes_per_task):
            k = e % num_tasks
            text, rgb, _ = synthetic_task(k)
            pos, state, action = _episode(rng, k, episode_length, state_dim, action_dim)
            images = {c: _render(pos, action[:, -1], rgb, image_size, wrist=i > 0) for i, c in enumerate(cameras)}
            writer.add_episode(images, state, action, text)
        # Mark the dataset with its parameters before the atomic rename.
        writer.extra_info[_MARKER] = params
    return root

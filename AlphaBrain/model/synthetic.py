"""Synthetic training samples for tests, smoke runs and benchmarks (no dataset needed).

The samples follow the DESIGN contract ("A training sample"). Each instruction
gets its own target action pattern, and the image carries a bright square
whose position shifts the target, so a policy must read both the image and the
text to fit them.
"""

from __future__ import annotations

import numpy as np

from AlphaBrain.dataloader.spec import DataSpec

DEFAULT_INSTRUCTIONS = ("open the drawer", "close the drawer", "push the button", "pick up the block")


def synthetic_examples(
    spec: DataSpec,
    n: int,
    *,
    seed: int = 0,
    instructions: tuple[str, ...] = DEFAULT_INSTRUCTIONS,
    task_id: int = 0,
) -> list[dict]:
    """`n` sample dicts shaped by `spec` (deterministic given `seed`)."""
    rng = np.random.default_rng(seed)
    height, width = spec.image_size
    # One fixed action pattern per instruction (same for every seed).
    patterns = np.random.default_rng(1234).normal(size=(len(instructions), spec.action_horizon, spec.action_dim))
    samples = []
    for i in range(n):
        k = i % len(instructions)
        images = []
        for _ in range(spec.num_cameras):
            im = rng.integers(0, 60, size=(height, width, 3), dtype=np.uint8)
            size = max(2, min(height, width) // 6)
            y, x = rng.integers(0, height - size), rng.integers(0, width - size)
            im[y : y + size, x : x + size] = 230
            images.append(im)
        pos = np.array([y / height - 0.5, x / width - 0.5])
        action = patterns[k] + 0.5 * np.resize(pos, spec.action_dim)[None, :]
        samples.append(
            {
                "image": images,
                "lang": instructions[k],
                "state": rng.normal(size=spec.state_dim).astype(np.float32),
                "action": action.astype(np.float32),
                "action_mask": np.ones(spec.action_horizon, dtype=bool),
                "task_id": task_id,
                "episode_index": i,
                "frame_index": 0,
            }
        )
    return samples

"""A closed-loop twin of the synthetic "push the <color> block <direction>" dataset.

The synthetic dataset (AlphaBrain/dataloader/synthetic.py) is made of scripted
episodes; this environment replays its world: the block moves by the first two
action components each step, the image and state are drawn exactly as in the
dataset, and an episode succeeds once the block has moved `SUCCESS_DISTANCE`
along the task's direction. It needs no simulator library and runs at thousands
of steps per second, so the whole evaluation path (workers, policy server,
matrix, metrics) can be exercised in seconds. It is a pipeline check, not a
robotics benchmark.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from AlphaBrain.benchmarks.suite_types import Suite, SuiteTask
from AlphaBrain.dataloader.synthetic import _render, synthetic_task
from AlphaBrain.utils.text import slugify

SUCCESS_DISTANCE = 0.15      # the scripted demos move 0.02 per step: success after ~8 good steps
EVAL_SEED_OFFSET = 1_000_003  # evaluation layouts come from their own RNG stream (demos use seed 0..)


class SyntheticPushEnv:
    """reset(seed) -> obs; step(action) -> (obs, success, done); obs = {"images": [HxWx3], "state": [S]}."""

    def __init__(self, k: int, episode_length: int, image_size: tuple[int, int], state_dim: int = 4):
        self.k, self.max_steps, self.image_size, self.state_dim = k, episode_length, image_size, state_dim
        self.instruction, self._rgb, self._direction = synthetic_task(k)
        self._pos = self._start = np.zeros(2)
        self._t = 0

    def _phase(self, t: int) -> float:
        return (t + 0.5) / self.max_steps

    def _obs(self, draw: bool = True) -> dict[str, Any]:
        phase = self._phase(self._t)
        grip = float(phase >= 0.5)
        prev_grip = float(self._t > 0 and self._phase(self._t - 1) >= 0.5)
        cols = [self._pos[0], self._pos[1], phase, prev_grip]
        cols += [np.cos(2 * np.pi * phase * (j + 1) + self.k) for j in range(max(0, self.state_dim - 4))]
        images = [_render(self._pos[None], np.array([grip]), self._rgb, self.image_size, wrist=False)[0]] if draw else []
        return {"images": images, "state": np.asarray(cols[: self.state_dim], dtype=np.float32)}

    def reset(self, seed: int) -> dict[str, Any]:
        self._start = np.random.default_rng(seed).uniform(0.3, 0.7, size=2)
        self._pos, self._t = self._start.copy(), 0
        return self._obs()

    def step(self, action: np.ndarray, render: bool = True) -> tuple[dict[str, Any], bool, bool]:
        self._pos = np.clip(self._pos + np.asarray(action, dtype=np.float64)[:2], 0.05, 0.95)
        self._t += 1
        success = float(np.dot(self._pos - self._start, self._direction)) >= SUCCESS_DISTANCE
        return self._obs(draw=render), success, success or self._t >= self.max_steps

    def close(self) -> None:
        pass


def synthetic_push_suite(num_tasks: int = 3, episode_length: int = 40, name: str | None = None) -> Suite:
    """The suite of the first `num_tasks` synthetic tasks (what `run_default_job.sh` trains on)."""
    tasks = []
    for k in range(num_tasks):
        text, _, _ = synthetic_task(k)
        tasks.append(SuiteTask(name=slugify(text), env_name=f"synthetic_push_{k}", instruction=text,
                               max_steps=episode_length))

    def make(task: SuiteTask, image_size: tuple[int, int]) -> SyntheticPushEnv:
        return SyntheticPushEnv(int(task.env_name.rsplit("_", 1)[1]), episode_length, image_size)

    return Suite(
        name or f"synthetic_push{num_tasks}",
        tasks,
        make,
        eval_seed_fn=lambda task_index, trial: EVAL_SEED_OFFSET + 1000 * task_index + trial,
        description="Closed-loop twin of the synthetic push dataset (pipeline check, no simulator).",
    )

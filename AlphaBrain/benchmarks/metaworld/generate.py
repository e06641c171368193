"""Generate a Meta-World demo stream: scripted-expert episodes written as a LeRobot v3.0 dataset.

    python -m AlphaBrain.benchmarks.metaworld.generate --stream metaworld_cl5
    python -m AlphaBrain.benchmarks.metaworld.generate --stream metaworld_cl10 --episodes-per-task 25 --workers 2

Per task (in stream order, task_index = position in the stream): N successful expert
episodes, each on a layout drawn from a training seed (tasks.train_seed; evaluation
seeds are a disjoint range). Failed episodes are dropped and counted. An episode ends
TAIL_STEPS steps after the first success, so the policy also sees "stay put" frames.
Per frame: the rendered camera image, the state (hand xyz + gripper opening), the action
actually executed (clipped to [-1, 1]) and the instruction.

Deterministic: the same parameters give the same arrays, with any number of workers.
Cached: if the output directory already holds a dataset made with the same parameters,
it is reused; different parameters are an error (use --force or another --out).
The worker pool, the cache and the dataset writing are shared with the LIBERO generator
(demo_generation.py); this module holds what is Meta-World's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from AlphaBrain.benchmarks import demo_generation as demos
from AlphaBrain.benchmarks.demo_collection import record_episode, worker_env
from AlphaBrain.benchmarks.metaworld.tasks import (
    METAWORLD_STREAMS,
    MetaWorldTaskSpec,
    default_dataset_dir,
    stream_env_names,
    task_spec,
    train_seed,
)
from AlphaBrain.utils.errors import UserError

GENERATOR_VERSION = 1
MARKER = "alphabrain_metaworld"   # info.json key: the parameters that made the dataset
TAIL_STEPS = 8                    # frames kept after the first success (one action chunk)
CAMERA_KEY = "image"              # -> observation.images.image
ROBOT_TYPE = "metaworld_sawyer"


# ---------------------------------------------------------------------------- one episode


def _get_env(env_name: str, image_size: tuple[int, int], camera: str, max_steps: int):
    """This process's (env, expert) of the task."""
    from AlphaBrain.benchmarks.metaworld.env import MetaWorldEnv, expert_policy

    def make() -> tuple:
        return (MetaWorldEnv(env_name, image_size=image_size, camera=camera, max_steps=max_steps),
                expert_policy(env_name))

    return worker_env((env_name, image_size, camera, max_steps), make, close=lambda pair: pair[0].close())


def expert_episode(job: tuple) -> Optional[dict[str, np.ndarray]]:
    """Run the expert on the layout of `seed`; the recorded episode, or None if it failed."""
    env_name, seed, image_size, camera, max_steps = job
    env, expert = _get_env(env_name, tuple(image_size), camera, max_steps)
    obs = env.reset(seed)
    # the expert's action: float32, already clipped to [-1, 1]
    return record_episode(env, obs, lambda obs: expert.get_action(obs["full_obs"]), (CAMERA_KEY,), max_steps,
                          TAIL_STEPS)


# ---------------------------------------------------------------------------- the stream


def _resolve_stream(stream: str | Sequence[str]) -> tuple[str, list[MetaWorldTaskSpec]]:
    if isinstance(stream, str):
        return stream, [task_spec(n) for n in stream_env_names(stream)]
    from AlphaBrain.benchmarks.metaworld.env import metaworld_env_names

    names = list(stream)
    known = set(metaworld_env_names())
    bad = [n for n in names if n not in known]
    if bad or not names or len(set(names)) != len(names):
        raise UserError(f"a custom stream must list distinct Meta-World env names; got {names} "
                        f"(unknown: {bad}). Known: {', '.join(sorted(known))}")
    return "custom", [task_spec(n) for n in names]


def generation_params(name: str, specs: list[MetaWorldTaskSpec], request: demos.DemoRequest,
                      camera: str) -> dict[str, Any]:
    """Everything that determines the dataset's content (compared to reuse a cached dataset)."""
    tasks = [[s.env_name, s.instruction, s.max_steps] for s in specs]
    return {**demos.common_params(GENERATOR_VERSION, name, tasks, request), "camera": camera, "tail_steps": TAIL_STEPS}


def _plan(spec: MetaWorldTaskSpec, k: int, seed: int, image_size: tuple[int, int], camera: str,
          needed: int) -> demos.TaskPlan:
    """How the demos of task `k` are collected; deterministic for any pool size."""

    def job(a: int) -> tuple:
        return spec.env_name, train_seed(seed, k, a), tuple(image_size), camera, spec.max_steps

    def failure(successes: int, attempts: int) -> str:
        return (f"the scripted expert of {spec.env_name} succeeded in only {successes} of {attempts} episodes "
                f"within max_steps={spec.max_steps}; the task's episode limit is probably too short or the "
                'installed metaworld/mujoco versions differ from the tested ones (pip install "metaworld==3.1.*" '
                '"mujoco==3.3.0")')

    return demos.TaskPlan(spec.env_name, spec.instruction, job, 4 * needed + 20, failure)


def generate_stream_dataset(
    stream: str | Sequence[str],
    out_dir: Optional[str | Path] = None,
    episodes_per_task: int = 25,
    seed: int = 0,
    image_size: tuple[int, int] = (64, 64),
    *,
    camera: Optional[str] = None,
    force: bool = False,
    workers: Optional[int] = None,
    progress: bool = True,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True),
) -> Path:
    """Generate (or reuse) the demo dataset of a Meta-World stream; returns its directory.

    `stream` is a name in METAWORLD_STREAMS, or a list of Meta-World env names (then give `out_dir`).
    `workers` processes run the episodes (default: min(2, CPU cores)); the output does not depend on it.
    """
    from AlphaBrain.benchmarks.metaworld.env import ACTION_NAMES, DEFAULT_CAMERA, FPS, STATE_NAMES

    name, specs = _resolve_stream(stream)
    if out_dir is None:
        if name == "custom":
            raise UserError("a custom list of tasks needs an explicit out_dir")
        out_dir = default_dataset_dir(name)
    root = Path(out_dir).expanduser()
    request = demos.demo_request(root, episodes_per_task, seed, image_size, workers, force=force, progress=progress,
                                 log=log)
    camera = camera or DEFAULT_CAMERA
    train_seed(seed, 0, 0)  # validates the seed range
    params = generation_params(name, specs, request, camera)
    if demos.reuse_cached(request, params, MARKER, "Meta-World", len(specs)):
        return root

    import metaworld
    import mujoco

    def summary_row(k: int, result: demos.TaskResult) -> dict[str, Any]:
        return {"env_name": specs[k].env_name, "instruction": specs[k].instruction,
                "episodes": len(result.episodes), "attempts": result.attempts, "mean_length": result.mean_length}

    needed = request.episodes_per_task
    layout = demos.DatasetLayout(FPS, ROBOT_TYPE, 4, 4, (CAMERA_KEY,), STATE_NAMES, ACTION_NAMES)
    versions = {"metaworld": getattr(metaworld, "__version__", "?"), "mujoco": mujoco.__version__}
    run = demos.write_demo_dataset(
        request, len(specs), lambda k: _plan(specs[k], k, seed, request.image_size, camera, needed), expert_episode,
        layout, pool_size=min(request.workers, len(specs) * needed), marker=MARKER, params=params,
        summary_row=summary_row, versions=versions,
    )
    log(f"{run.wrote}.")
    return root


# ---------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    streams = "; ".join(f"{k}: {', '.join(v)}" for k, v in METAWORLD_STREAMS.items())
    return demos.generator_parser(
        "AlphaBrain.benchmarks.metaworld.generate",
        "Generate scripted-expert demos of a Meta-World task stream as a LeRobot v3.0 dataset (one task_index "
        "per task, in stream order). Reuses an existing dataset made with the same parameters.",
        f"Streams: {streams}. Default output: $ALPHABRAIN_DATA_DIR/<stream>, else <repo>/playground/datasets/<stream>.",
        stream_help=f"task stream: {', '.join(METAWORLD_STREAMS)}", seed_help="the training layouts", image_size=64,
        options=lambda p: p.add_argument("--camera", default=None, help="Meta-World camera (default corner4)"),
    )


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return demos.run_generator(generate_stream_dataset, args, camera=args.camera)


if __name__ == "__main__":
    sys.exit(main())

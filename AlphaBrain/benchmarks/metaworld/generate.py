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
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from AlphaBrain.benchmarks.metaworld.tasks import (
    METAWORLD_STREAMS,
    MetaWorldTaskSpec,
    default_dataset_dir,
    stream_env_names,
    task_spec,
    train_seed,
)
from AlphaBrain.benchmarks.demo_collection import check_cached, collect_successes
from AlphaBrain.utils.errors import UserError

GENERATOR_VERSION = 1
MARKER = "alphabrain_metaworld"   # info.json key: the parameters that made the dataset
TAIL_STEPS = 8                    # frames kept after the first success (one action chunk)
CAMERA_KEY = "image"              # -> observation.images.image
ROBOT_TYPE = "metaworld_sawyer"


# ---------------------------------------------------------------------------- one episode

_WORKER_ENVS: dict[tuple, Any] = {}


def _get_env(env_name: str, image_size: tuple[int, int], camera: str, max_steps: int):
    from AlphaBrain.benchmarks.metaworld.env import MetaWorldEnv, expert_policy

    key = (env_name, image_size, camera, max_steps)
    if key not in _WORKER_ENVS:
        for old_env, _ in _WORKER_ENVS.values():  # one env alive at a time
            old_env.close()
        _WORKER_ENVS.clear()
        _WORKER_ENVS[key] = (
            MetaWorldEnv(env_name, image_size=image_size, camera=camera, max_steps=max_steps),
            expert_policy(env_name),
        )
    return _WORKER_ENVS[key]


def _close_envs() -> None:
    for env, _ in _WORKER_ENVS.values():
        env.close()
    _WORKER_ENVS.clear()


def expert_episode(job: tuple) -> Optional[dict[str, np.ndarray]]:
    """Run the expert on the layout of `seed`; the recorded episode, or None if it failed."""
    env_name, seed, image_size, camera, max_steps = job
    env, expert = _get_env(env_name, tuple(image_size), camera, max_steps)
    obs = env.reset(seed)
    images, states, actions = [], [], []
    end, succeeded = max_steps, False
    for step in range(1, max_steps + 1):
        action = expert.get_action(obs["full_obs"])  # float32, already clipped to [-1, 1]
        images.append(obs["images"][0])
        states.append(obs["state"])
        actions.append(action)
        obs, success, _ = env.step(action)
        if success and not succeeded:
            succeeded, end = True, min(step + TAIL_STEPS, max_steps)
        if step >= end:
            break
    if not succeeded:
        return None
    return {"image": np.stack(images), "state": np.stack(states), "action": np.stack(actions)}


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


def generation_params(name: str, specs: list[MetaWorldTaskSpec], episodes_per_task: int, seed: int,
                      image_size: tuple[int, int], camera: str) -> dict[str, Any]:
    """Everything that determines the dataset's content (compared to reuse a cached dataset)."""
    return {
        "generator_version": GENERATOR_VERSION,
        "stream": name,
        "tasks": [[s.env_name, s.instruction, s.max_steps] for s in specs],
        "episodes_per_task": int(episodes_per_task),
        "seed": int(seed),
        "image_size": [int(image_size[0]), int(image_size[1])],
        "camera": camera,
        "tail_steps": TAIL_STEPS,
    }


def _cached(root: Path, params: dict[str, Any]) -> bool:
    """True if `root` holds this exact dataset; raises if it holds something else."""
    return check_cached(root, params, MARKER, "Meta-World")


def _attempts(specs_k: MetaWorldTaskSpec, k: int, seed: int, image_size, camera, pool, needed: int,
              bar) -> tuple[list[dict[str, np.ndarray]], int]:
    """(successful episodes of one task in attempt order, attempts made); deterministic for any pool size."""

    def job(a: int) -> tuple:
        return specs_k.env_name, train_seed(seed, k, a), tuple(image_size), camera, specs_k.max_steps

    def failure(successes: int, attempts: int) -> str:
        return (f"the scripted expert of {specs_k.env_name} succeeded in only {successes} of {attempts} episodes "
                f"within max_steps={specs_k.max_steps}; the task's episode limit is probably too short or the "
                'installed metaworld/mujoco versions differ from the tested ones (pip install "metaworld==3.1.*" '
                '"mujoco==3.3.0")')

    episodes, attempts, _ = collect_successes(job, expert_episode, pool, needed, 4 * needed + 20, bar, failure)
    return episodes, attempts


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
    from AlphaBrain.dataloader.lerobot_writer import LeRobotDatasetWriter

    name, specs = _resolve_stream(stream)
    if out_dir is None:
        if name == "custom":
            raise UserError("a custom list of tasks needs an explicit out_dir")
        out_dir = default_dataset_dir(name)
    root = Path(out_dir).expanduser()
    if int(episodes_per_task) < 1:
        raise UserError(f"episodes_per_task must be >= 1, got {episodes_per_task}")
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    image_size = (int(image_size[0]), int(image_size[1]))
    camera = camera or DEFAULT_CAMERA
    train_seed(seed, 0, 0)  # validates the seed range
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    if int(workers) < 1:
        raise UserError(f"workers must be >= 1, got {workers}")
    params = generation_params(name, specs, episodes_per_task, seed, image_size, camera)
    if not force and _cached(root, params):
        log(f"Reusing {root}: it was generated with the same parameters "
            f"({len(specs)} tasks x {episodes_per_task} episodes, seed {seed}, {image_size[0]}x{image_size[1]}).")
        return root

    import metaworld
    import mujoco
    from tqdm import tqdm

    start = time.perf_counter()
    pool = None
    if workers > 1:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(min(workers, len(specs) * episodes_per_task))
    writer = LeRobotDatasetWriter(
        root, fps=FPS, robot_type=ROBOT_TYPE, state_dim=4, action_dim=4, cameras={CAMERA_KEY: image_size},
        version="v3.0", image_storage="image", overwrite=True, state_names=STATE_NAMES, action_names=ACTION_NAMES,
    )
    summary, frames = [], 0
    try:
        with writer:
            for k, spec in enumerate(specs):
                t0 = time.perf_counter()
                with tqdm(total=episodes_per_task, desc=f"[{k + 1}/{len(specs)}] {spec.env_name}", unit="demo",
                          disable=not progress, file=sys.stderr, dynamic_ncols=True) as bar:
                    episodes, attempts = _attempts(spec, k, seed, image_size, camera, pool, episodes_per_task, bar)
                for ep in episodes:
                    writer.add_episode({CAMERA_KEY: ep["image"]}, ep["state"], ep["action"], spec.instruction)
                lengths = [len(ep["action"]) for ep in episodes]
                frames += sum(lengths)
                # No timings in info.json: the same parameters give the same bytes.
                summary.append({"env_name": spec.env_name, "instruction": spec.instruction,
                                "episodes": len(episodes), "attempts": attempts,
                                "mean_length": round(float(np.mean(lengths)), 1)})
                if not progress:
                    log(f"[{k + 1}/{len(specs)}] {spec.env_name}: {len(episodes)} demos from {attempts} attempts, "
                        f"mean length {np.mean(lengths):.1f}, {time.perf_counter() - t0:.1f} s")
            writer.extra_info[MARKER] = params
            writer.extra_info[MARKER + "_summary"] = summary
            writer.extra_info[MARKER + "_versions"] = {"metaworld": getattr(metaworld, "__version__", "?"),
                                                      "mujoco": mujoco.__version__}
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        _close_envs()
    seconds = time.perf_counter() - start
    log(f"Wrote {root}: {len(specs)} tasks x {episodes_per_task} episodes "
        f"({frames} frames) in {seconds:.1f} s.")
    return root


# ---------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m AlphaBrain.benchmarks.metaworld.generate",
        description="Generate scripted-expert demos of a Meta-World task stream as a LeRobot v3.0 dataset "
                    "(one task_index per task, in stream order). Reuses an existing dataset made with the same "
                    "parameters.",
        epilog="Streams: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in METAWORLD_STREAMS.items())
               + ". Default output: $ALPHABRAIN_DATA_DIR/<stream>, else <repo>/playground/datasets/<stream>.",
    )
    p.add_argument("--stream", required=True, help=f"task stream: {', '.join(METAWORLD_STREAMS)}")
    p.add_argument("--episodes-per-task", type=int, default=25, help="successful demos per task (default 25)")
    p.add_argument("--out", default=None, help="output dataset directory (default: see below)")
    p.add_argument("--seed", type=int, default=0, help="selects the training layouts, 0..999 (default 0)")
    p.add_argument("--image-size", type=int, default=64, help="square camera image side in pixels (default 64)")
    p.add_argument("--camera", default=None, help="Meta-World camera (default corner4)")
    p.add_argument("--workers", type=int, default=None,
                   help="processes running episodes in parallel; the output does not depend on it "
                        "(default: min(2, CPU cores))")
    p.add_argument("--force", action="store_true", help="regenerate even if the output directory exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        path = generate_stream_dataset(
            args.stream, args.out, episodes_per_task=args.episodes_per_task, seed=args.seed,
            image_size=(args.image_size, args.image_size), camera=args.camera, force=args.force,
            workers=args.workers, progress=not args.no_progress,
        )
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

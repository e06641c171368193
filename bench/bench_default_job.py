"""Where the default job's time goes, before and after its speed-ups, measured side by side in one run.

`scripts/run_default_job.sh` = demos -> train (5 tasks x STEPS at batch 64) -> evaluate (5 x 5 cells).
This measures the rates each phase is made of, each with the old and the new setting:

  training     steps/s of the tiny model on metaworld_cl5 at batch 64, with the decoded-frame cache
               off (ALPHABRAIN_FRAME_CACHE_MB=0, the old path: one PNG decode per sample) and on
  evaluation   ms per simulated step of closed-loop episodes (policy queried every 4 steps), rendering
               every frame (the old path) and only the frame before a query (what evaluation does now)
  demos        the default job's demos: generated first if missing (and that time printed), else reused

and projects the phases of the default job from them: training = 5 x steps / (steps/s), before with
1000 steps and the cache off, after with 600 and the cache on. The phase times a whole job printed
(docs/quickstart/continual_learning.md) are the reference; these rates say where they come from.

    python bench/bench_default_job.py [--probe-steps 400] [--episodes 4] [--max-steps 100]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

STREAM = "metaworld_cl5"
TASKS, BEFORE_STEPS, AFTER_STEPS = 5, 1000, 600


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--probe-steps", type=int, default=400,
                   help="training steps timed per setting (default 400; the first pass over a task decodes every frame, "
                        "so a short probe understates the cache)")
    p.add_argument("--episodes", type=int, default=4, help="evaluation episodes timed per setting (default 4)")
    p.add_argument("--max-steps", type=int, default=100, help="steps per evaluation episode (default 100)")
    p.add_argument("--replan-every", type=int, default=4, help="policy query every N steps (default 4)")
    args = p.parse_args(argv)
    for name in ("probe_steps", "episodes", "max_steps", "replan_every"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def demos_dir() -> Path:
    """The default job's demos (generated here first if missing, and timed)."""
    from AlphaBrain.benchmarks.metaworld.generate import generate_stream_dataset

    return Path(generate_stream_dataset(STREAM, progress=False))


def train_rate(root: Path, data: Path, steps: int, cache_mb: str, extra: tuple[str, ...] = ()) -> tuple[float, Path]:
    """Steps/s of the tiny model's training on the first task of `data` (the default job's settings plus
    the overrides `extra`), with the given frame-cache budget."""
    from AlphaBrain.config.loader import BASE_CONFIG, load_run_config, model_overlay_path
    from AlphaBrain.training.continual_learning.train import ContinualVLATrainer

    os.environ["ALPHABRAIN_FRAME_CACHE_MB"] = cache_mb  # read when the dataset is built
    cfg = load_run_config([BASE_CONFIG, model_overlay_path("tiny")], [
        f"run_root_dir={root}", f"run_id=cache{cache_mb}", f"continual_learning.task_sequence={data}",
        f"continual_learning.steps_per_task={steps}", "datasets.vla_data.per_device_batch_size=64",
        "continual_learning.replay.buffer_size_per_task=200", "continual_learning.replay.replay_batch_ratio=0.4",
        "trainer.logging_frequency=1000000", *extra])
    trainer = ContinualVLATrainer(cfg)
    trainer.prepare_training()
    start = time.perf_counter()
    trainer._train_task(0)
    return steps / (time.perf_counter() - start), trainer.run_dir


def eval_step_ms(run_dir: Path, episodes: int, max_steps: int, replan_every: int, every_frame: bool,
                 stream: str = STREAM, image_size: tuple[int, int] | None = None,
                 action_dim: int = 4) -> tuple[float, float]:
    """(ms per simulated step, s per episode) of closed-loop episodes on the stream's first task, resets
    included; an episode ends on success or after `max_steps`."""
    from AlphaBrain.benchmarks import get_suite
    from AlphaBrain.deployment.policy import load_policy
    from AlphaBrain.evaluation.rollout import check_chunk

    suite = get_suite(stream)
    task = suite.tasks[0]
    env = suite.make_env(task.name) if image_size is None else suite.make_env(task.name, image_size=image_size)
    policy = load_policy(run_dir, "last")
    steps, start = 0, time.perf_counter()
    try:
        for k in range(episodes):
            obs, queue = env.reset(suite.eval_seed(0, k)), []
            for _ in range(max_steps):
                if not queue:
                    reply = policy.infer({"images": obs["images"], "state": obs["state"], "prompt": task.instruction})
                    queue = list(check_chunk(reply["actions"], action_dim)[:replan_every])
                action = np.clip(queue.pop(0), -1.0, 1.0)
                obs, success, done = env.step(action, render=every_frame or not queue)
                steps += 1
                if success or done:
                    break
    finally:
        env.close()
    seconds = time.perf_counter() - start
    return 1000 * seconds / steps, seconds / episodes


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    data = demos_dir()
    demo_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        before_rate, _ = train_rate(Path(tmp), data, args.probe_steps, "0")
        after_rate, run = train_rate(Path(tmp), data, args.probe_steps, "2048")
        before_ms, _ = eval_step_ms(run, args.episodes, args.max_steps, args.replan_every, every_frame=True)
        after_ms, _ = eval_step_ms(run, args.episodes, args.max_steps, args.replan_every, every_frame=False)
    before_train, after_train = TASKS * BEFORE_STEPS / before_rate, TASKS * AFTER_STEPS / after_rate
    rows = [
        ("training steps/s (batch 64)", f"{before_rate:.1f}", f"{after_rate:.1f}", f"{after_rate / before_rate:.2f}x"),
        (f"training phase, projected ({TASKS} x {BEFORE_STEPS} -> {TASKS} x {AFTER_STEPS} steps)",
         f"{before_train:.0f} s", f"{after_train:.0f} s", f"{before_train / after_train:.2f}x"),
        (f"evaluation ms per simulated step (query every {args.replan_every})", f"{before_ms:.1f}", f"{after_ms:.1f}",
         f"{before_ms / after_ms:.2f}x"),
    ]
    print(f"\nDefault job phases ({STREAM}, tiny model, {os.cpu_count()} CPU cores); "
          f"demos {'generated' if demo_s > 5 else 'reused'} in {demo_s:.0f} s\n")
    print("| measure | before | after | speed-up |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""LIBERO-Goal on a CPU: demo generation, training and evaluation speed, before and after, in one run.

The three rates a CPU-only libero_goal_scripted study is made of, each measured with the old and
the new setting side by side (only numbers from one run compare: the machine may be shared):

  demos       seconds per kept episode per worker: --episodes expert episodes of each of the stream's
              tasks (1 worker, env builds included), 128 px "fast" (the old default) vs
              --image-size px "lowpoly" (what the study command renders)
  training    steps/s of the tiny model, batch 64, both cameras, on the first task of each dataset:
              128 px frames with the decoded-frame cache off (one PNG decode and a resize per sample,
              the old path) vs --image-size px frames with the cache on
  evaluation  seconds per episode of the trained policy on the first task (reset and wait steps
              included; a failed trial runs to the suite's 300-step limit): every frame rendered,
              128 px "fast" (the old path) vs only the frame before a policy query, --image-size px
              "lowpoly"

Both settings get LiberoEnv's cheaper hard resets (kept compile and render context: not a bench
setting), so "before" is already ~2 s per reset faster than the code the issue measured. The issue's reference
figures (measured before any of this on the same 2-core machine: 1012 s for 75 demos with 2 workers,
2.5 steps/s, ~35 s per episode) are printed beside them.

    python bench/bench_libero_speed.py [--episodes 2] [--eval-episodes 2] [--probe-steps 200] [--image-size 64]
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

from bench.bench_default_job import eval_step_ms, train_rate  # noqa: E402

STREAM = "libero_goal_scripted"
RENDER_VAR = "ALPHABRAIN_LIBERO_RENDER"
# The measurements on the 2-core machine, before this work (libero_goal_mini, 128 px, "fast").
REFERENCE = {"demo": 2 * 1012 / 75, "train": 2.5, "eval": 35.0}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--episodes", type=int, default=2, help="demos per task and setting (default 2)")
    p.add_argument("--eval-episodes", type=int, default=2, help="evaluated episodes per setting (default 2)")
    p.add_argument("--probe-steps", type=int, default=200, help="training steps timed per setting (default 200)")
    p.add_argument("--image-size", type=int, default=64,
                   help="camera frames of the 'after' setting (default 64, what the tiny model reads)")
    return p.parse_args(argv)


def demo_seconds(out: Path, mode: str, size: int, episodes: int) -> tuple[float, Path]:
    """Seconds per kept episode (1 worker): `episodes` of each of the stream's tasks (failed tries included)."""
    from AlphaBrain.benchmarks.libero.generate import generate_stream_dataset
    from AlphaBrain.benchmarks.libero.tasks import suite_task_specs

    start = time.perf_counter()
    root = generate_stream_dataset(STREAM, out, episodes_per_task=episodes, image_size=size, render_mode=mode,
                                   workers=1, progress=False, log=lambda msg: None)
    return (time.perf_counter() - start) / (episodes * len(suite_task_specs(STREAM))), Path(root)


def main(argv=None) -> int:
    args = parse_args(argv)
    old, new = (128, 128), (args.image_size, args.image_size)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        demo_before, data_before = demo_seconds(tmp / "fast", "fast", 128, args.episodes)
        demo_after, data = demo_seconds(tmp / "lowpoly", "lowpoly", args.image_size, args.episodes)
        rows.append(("demo generation, s per episode per worker", REFERENCE["demo"], demo_before, demo_after, "s"))
        print(f"demos: {demo_before:.1f} -> {demo_after:.1f} s per episode", flush=True)
        train_before, _ = train_rate(tmp / "runs", data_before, args.probe_steps, "0")
        train_after, run = train_rate(tmp / "runs", data, args.probe_steps, "2048")
        rows.append(("training steps/s (batch 64, two cameras)", REFERENCE["train"], train_before, train_after, "/s"))
        print(f"training: {train_before:.1f} -> {train_after:.1f} steps/s", flush=True)
        os.environ[RENDER_VAR] = "fast"
        _, eval_before = eval_step_ms(run, args.eval_episodes, 300, 8, every_frame=True, stream=STREAM, image_size=old,
                                     action_dim=7)
        os.environ[RENDER_VAR] = "lowpoly"
        _, eval_after = eval_step_ms(run, args.eval_episodes, 300, 8, every_frame=False, stream=STREAM, image_size=new,
                                    action_dim=7)
        os.environ.pop(RENDER_VAR)
        rows.append(("evaluation, s per episode per worker", REFERENCE["eval"], eval_before, eval_after, "s"))
    print(f"\n{STREAM}, tiny model, {os.cpu_count()} CPU cores; before = 128 px, fast, no frame cache, every "
          f"frame rendered; after = {args.image_size} px, lowpoly, frame cache, frames only before a query "
          "(measured side by side in this run)\n")
    print("| measure | issue's figure | before | after | speed-up |\n|---|---|---|---|---|")
    for name, ref, before, after, unit in rows:
        gain = after / before if unit == "/s" else before / after
        print(f"| {name} | {ref:.1f} | {before:.1f} | {after:.1f} | {gain:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

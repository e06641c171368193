"""Trainer overhead and replay-buffer memory, for the small model on CPU.

Measures, in one process and interleaved (the machine is noisy, so only ratios
measured side by side mean anything):
  plain   a bare PyTorch loop: DataLoader -> forward -> backward -> clip -> AdamW step
  none    ContinualVLATrainer with sequential fine-tuning (hooks are no-ops)
  er      ContinualVLATrainer with ER (replay samples decoded from the dataset every step)
All three train the same task (the 2nd of the stream, so ER's buffer is full) from
the same weights. Then prints the replay buffer's bytes per stored sample against
storing decoded samples.

    python bench/bench_trainer_overhead.py [--steps 60] [--batch 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from AlphaBrain.config.loader import BASE_CONFIG, load_run_config, model_overlay_path  # noqa: E402
from AlphaBrain.dataloader.synthetic import write_synthetic_dataset  # noqa: E402
from AlphaBrain.training.continual_learning.algorithms import get_algorithm_class  # noqa: E402
from AlphaBrain.training.continual_learning.train import ContinualVLATrainer, list_collate  # noqa: E402
from AlphaBrain.training.trainer_utils.optim import build_optimizer  # noqa: E402


def bench_dataset(root: Path) -> Path:
    """The 3-task synthetic stream the trainer benchmarks train on (64x64 images, 8 episodes of 40 frames per task)."""
    return write_synthetic_dataset(root, num_tasks=3, episodes_per_task=8, episode_length=40, image_size=(64, 64), seed=0)


def make_trainer(
    root: Path, data: Path, algo: str, steps: int, batch: int, buffer: int | None = None, *,
    overrides: tuple[str, ...] = (), run_id: str | None = None,
) -> ContinualVLATrainer:
    """A prepared trainer on the tiny model; `buffer` sets buffer_size_per_task where the algorithm has that key."""
    has_buffer = buffer is not None and "buffer_size_per_task" in get_algorithm_class(algo).HYPERPARAMETERS
    cfg = load_run_config(
        [BASE_CONFIG, model_overlay_path("tiny")],
        [
            f"run_root_dir={root}", f"run_id={run_id or algo}", f"continual_learning.task_sequence={data}",
            f"continual_learning.steps_per_task={steps}", f"datasets.vla_data.per_device_batch_size={batch}",
            "continual_learning.replay.enabled=false", f"continual_learning.algorithm.name={algo}",
            *([f"continual_learning.algorithm.buffer_size_per_task={buffer}"] if has_buffer else []),
            "trainer.logging_frequency=1000",
            *overrides,
        ],
    )
    trainer = ContinualVLATrainer(cfg)
    trainer.prepare_training()
    return trainer


def time_trainer_task(trainer: ContinualVLATrainer, state: dict) -> float:
    trainer.unwrapped.load_state_dict(state)
    start = time.perf_counter()
    trainer._train_task(1)
    return time.perf_counter() - start


def time_plain_loop(trainer: ContinualVLATrainer, state: dict, steps: int, batch: int) -> float:
    model = trainer.unwrapped
    model.load_state_dict(state)
    model.train()
    loader = torch.utils.data.DataLoader(trainer.stream.tasks[1], batch_size=batch, shuffle=True, drop_last=True,
                                         collate_fn=list_collate)
    optimizer = build_optimizer(model, trainer.cfg.trainer)
    it = iter(loader)
    start = time.perf_counter()
    for _ in range(steps):
        try:
            examples = next(it)
        except StopIteration:
            it = iter(loader)
            examples = next(it)
        loss = model(examples)["action_loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def decoded_sample_bytes(sample: dict) -> int:
    total = sum(img.nbytes for img in sample["image"])
    for key in ("state", "action", "action_mask"):
        total += getattr(sample.get(key), "nbytes", 0)
    return total + len(sample["lang"].encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--buffer", type=int, default=200, help="ER buffer_size_per_task")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = bench_dataset(tmp / "data")
        trainers = {a: make_trainer(tmp / "runs", data, a, args.steps, args.batch, args.buffer) for a in ("sequential", "er")}
        # Fill ER's memory with task 0, as it would be when task 1 starts.
        er = trainers["er"]
        from AlphaBrain.training.continual_learning.algorithms import CLContext

        er.algorithm.on_task_end(CLContext(0, er.unwrapped, er.stream.tasks[0], None, er.accelerator))
        state = {k: v.clone() for k, v in trainers["sequential"].unwrapped.state_dict().items()}

        # Warm-up (allocator, first-call overheads), then interleaved repeats.
        time_plain_loop(trainers["sequential"], state, 5, args.batch)
        times = {"plain": [], "none": [], "er": []}
        for _ in range(args.repeats):
            times["plain"].append(time_plain_loop(trainers["sequential"], state, args.steps, args.batch))
            times["none"].append(time_trainer_task(trainers["sequential"], state))
            times["er"].append(time_trainer_task(er, state))

        base = statistics.median(times["plain"])
        print(f"\nTiny VLA, 64x64 images, batch {args.batch}, {args.steps} steps x {args.repeats} repeats, "
              f"{torch.get_num_threads()} threads (median)")
        print(f"{'loop':<28}{'steps/s':>10}{'time / plain':>15}")
        labels = {"plain": "plain PyTorch loop", "none": "trainer, no algorithm", "er": "trainer + ER"}
        for key, label in labels.items():
            med = statistics.median(times[key])
            print(f"{label:<28}{args.steps / med:>10.2f}{med / base:>15.3f}")

        buf = er.algorithm.buffer
        sample = er.stream.tasks[0][0]
        per_ref = buf.nbytes() / len(buf)
        decoded = decoded_sample_bytes(sample)
        libero = 2 * 256 * 256 * 3 + 8 * 4 + 8 * 7 * 4 + 8  # two 256x256 cameras, 8-D state, 7-D chunk of 8
        print(f"\nReplay buffer memory ({len(buf)} stored samples)")
        print(f"{'storage':<40}{'bytes/sample':>14}")
        print(f"{'references (dataset, episode, frame)':<40}{per_ref:>14.0f}")
        print(f"{'decoded sample, this dataset (64x64)':<40}{decoded:>14d}   ({decoded / per_ref:.0f}x)")
        print(f"{'decoded sample, LIBERO-sized':<40}{libero:>14d}   ({libero / per_ref:.0f}x)")


if __name__ == "__main__":
    main()

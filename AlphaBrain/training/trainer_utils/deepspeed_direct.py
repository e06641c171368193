"""Train a task stream with DeepSpeed (ZeRO-2) called directly, with the trainer's CL hook order.

`ContinualVLATrainer` prepares the model once and builds a fresh optimizer per
task; accelerate's DeepSpeed integration wants model and optimizer (and a data
loader, for the "auto" batch size) in one `prepare` call, so it cannot drive
that loop. This module is the small direct path: one `deepspeed.initialize`
for the whole stream, and per task exactly what the trainer does

    on_task_start -> [observe -> modify_batch -> engine(batch) (+ compute_penalty)
                      -> engine.backward -> after_backward -> engine.step] x steps x accumulation
    -> on_task_end

Per task the optimizer state is cleared and the LR schedule rebuilt (the trainer
builds a new optimizer per task); every random stream is reseeded from
(seed, task) as in the trainer, and each rank reads its own shard of the task.

Under ZeRO-2 `param.grad` is None after `engine.backward`: gradients live in
DeepSpeed's partitioned buffers. Algorithms that read `param.grad` in
`after_backward` (A-GEM, SI) are refused under any ZeRO stage with a clear
error; MIR captures gradients with `Tensor.register_hook` during autograd and
works.

On a machine without GPUs set DS_ACCELERATOR=cpu (done here when unset) and use
the gloo backend; neither oneCCL nor intel_extension_for_pytorch is needed.

Usage (one process per rank, e.g. under `torchrun --nproc_per_node 2`)::

    trainer = ContinualVLATrainer(cfg)          # its Accelerator joins the process group
    trainer.prepare_training(dry_run=True)      # stream, model, algorithm; nothing written
    engine = train_stream_deepspeed(trainer, "configs/deepspeed/zero2.json")
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import torch

from AlphaBrain.utils.errors import ConfigError

DEFAULT_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "deepspeed" / "zero2.json"

# Algorithms whose after_backward reads param.grad, which ZeRO-2 leaves as None.
NEEDS_PARAM_GRAD = frozenset({"agem", "si"})
SHM_COMM_OP = "deepspeed_shm_comm"


def import_deepspeed():
    """`deepspeed`, with its CPU accelerator selected when there is no GPU (must be set before the import)."""
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    try:
        import deepspeed
    except ImportError:
        raise ConfigError(
            "DeepSpeed is not installed. Install it with: pip install -e '.[deepspeed]' (or pip install deepspeed)."
        ) from None
    if not torch.cuda.is_available() and os.environ.get("ALPHABRAIN_DS_SHM_COMM", "0") != "1":
        # DeepSpeed's CPU backend otherwise compiles a shared-memory all-reduce kernel (C++, ~2 min, needs g++)
        # the first time a process group starts; gloo does the same collectives without it.
        deepspeed.ops.__compatible_ops__[SHM_COMM_OP] = False
    return deepspeed


def resolve_config(config: Any, trainer_cfg: Any, micro_batch_size: int, mixed_precision: str = "no") -> dict:
    """A DeepSpeed config dict with accelerate's "auto" values filled from the run's settings.

    `config` is a dict or a path to a JSON file (e.g. configs/deepspeed/zero2.json, shared with
    `accelerate launch --use_deepspeed`).
    """
    if config is None:
        config = DEFAULT_CONFIG
    if not isinstance(config, Mapping):
        path = Path(config)
        if not path.is_file():
            raise ConfigError(f"DeepSpeed config {path} does not exist (the shipped one is {DEFAULT_CONFIG}).")
        config = json.loads(path.read_text())
    out = json.loads(json.dumps(dict(config)))  # deep copy; DeepSpeed edits the dict it is given
    accum = int(trainer_cfg.gradient_accumulation_steps)
    clip = trainer_cfg.gradient_clipping
    filled = {
        "train_micro_batch_size_per_gpu": int(micro_batch_size),
        "gradient_accumulation_steps": accum,
        "gradient_clipping": 0.0 if clip is None else float(clip),
    }
    for key, value in filled.items():
        if out.get(key, "auto") == "auto":
            out[key] = value
    if out.get("train_batch_size") == "auto":
        del out["train_batch_size"]  # DeepSpeed derives it: micro batch x accumulation x ranks
    for precision in ("bf16", "fp16"):
        block = out.get(precision)
        if isinstance(block, dict) and block.get("enabled") == "auto":
            block["enabled"] = mixed_precision == precision
    return out


def _forever(loader):
    while True:
        yield from loader


def _check_algorithm(algorithm: Any, config: Mapping) -> None:
    stage = int(config.get("zero_optimization", {}).get("stage", 0))
    if stage >= 1 and algorithm.name in NEEDS_PARAM_GRAD:
        # Stage 2 leaves param.grad None; stage 1 reduces into its own partitions as well, so only stage 0
        # (plain data parallelism) guarantees the whole, averaged gradient in param.grad.
        raise ConfigError(
            f'Algorithm "{algorithm.name}" reads param.grad after backward, which ZeRO stage {stage} does not leave '
            "whole (gradients live in DeepSpeed's partitioned buffers). Set zero_optimization.stage to 0, "
            "or train it with the accelerate/DDP trainer (run_cl_train.sh without --deepspeed)."
        )


def train_stream_deepspeed(
    trainer: Any,
    ds_config: Any = None,
    *,
    on_micro_step: Optional[Callable[[Any, dict], None]] = None,
    after_task: Optional[Callable[[int], None]] = None,
) -> Any:
    """Train every task of `trainer.stream` with a DeepSpeed engine; returns the engine.

    `trainer` is a `ContinualVLATrainer` after `prepare_training(dry_run=True)` (model, stream and
    algorithm built, the model not yet wrapped). `on_micro_step(engine, info)` is called after each
    micro-batch's `engine.backward` (before `engine.step`), for logging or checks; `info` has
    task, step, loss. `after_task(position)` runs after each `on_task_end`, on every rank: pass
    the trainer's checkpoint writer there (under ZeRO-2 `engine.module` holds the whole model on
    every rank, so the trainer's full-model save on rank 0 works unchanged).
    """
    from AlphaBrain.training.continual_learning.algorithms import CLContext
    from AlphaBrain.training.continual_learning.train import seed_everything
    from AlphaBrain.training.trainer_utils.optim import build_optimizer, build_scheduler

    deepspeed = import_deepspeed()
    cfg, algo, stream = trainer.cfg, trainer.algorithm, trainer.stream
    if trainer.model is None or algo is None:
        raise ConfigError("train_stream_deepspeed needs a prepared trainer: call trainer.prepare_training(dry_run=True).")
    config = resolve_config(
        ds_config, cfg.trainer, int(cfg.datasets.vla_data.per_device_batch_size), str(cfg.trainer.mixed_precision)
    )
    _check_algorithm(algo, config)
    # gloo on CPU: DeepSpeed's CPU accelerator otherwise asks for oneCCL.
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    deepspeed.init_distributed(dist_backend=backend)
    model = trainer.model
    engine, optimizer, _, _ = deepspeed.initialize(
        model=model, optimizer=build_optimizer(model, cfg.trainer), config=config
    )
    base_optimizer = getattr(optimizer, "optimizer", optimizer)  # the torch AdamW inside ZeRO's wrapper
    accum = int(config["gradient_accumulation_steps"])
    for position in range(trainer.start_position, len(stream)):
        task, steps = stream.tasks[position], stream.steps_per_task
        seed_everything(trainer.seed + 1000 * (position + 1))
        loader = trainer.build_task_dataloader(position)
        base_optimizer.state.clear()  # a fresh AdamW per task, as in the trainer
        scheduler = build_scheduler(base_optimizer, cfg.trainer, steps)
        ctx = CLContext(position, engine.module, task, loader, trainer.accelerator, num_tasks=len(stream),
                        extras={"gradient_accumulation_steps": accum, "steps": steps})
        algo.on_task_start(ctx)
        engine.train()
        batches = _forever(loader)
        for step in range(steps):
            for _ in range(accum):
                batch = next(batches)
                algo.observe(batch, position)
                batch = algo.modify_batch(batch, position)
                out = engine(batch)
                penalty = algo.compute_penalty(engine.module)
                loss = out["action_loss"] if penalty is None else out["action_loss"] + penalty
                engine.backward(loss)  # scales by 1/accumulation itself
                algo.after_backward(engine.module)
                if on_micro_step is not None:
                    on_micro_step(engine, {"task": position, "step": step, "loss": float(loss.detach())})
                engine.step()  # an optimizer step (with clipping) only at the accumulation boundary
            scheduler.step()
            trainer.global_step += 1
        algo.on_task_end(ctx)
        if after_task is not None:
            after_task(position)
    return engine

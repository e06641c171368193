"""What differs between training under accelerate (one process or DDP) and under a DeepSpeed engine.

The trainer has one loop (train.py); it asks its backend to

    prepare(model)          wrap the policy once per run (DDP / a DeepSpeed engine)
    start_task(steps)       a fresh optimizer state and LR schedule for a task
    sync(last_micro)        the context a micro-batch runs in (DDP skips the all-reduce until the last)
    autocast()              mixed precision for the forward
    backward(loss)          the micro-batch's backward, scaled by 1 / gradient accumulation
    micro_batch_done()      after the algorithm's after_backward (DeepSpeed counts micro-batches here)
    optimizer_step()        clip, step, zero the gradients, advance the schedule

and reads `keeps_param_grad`: whether `param.grad` holds the whole gradient after backward.
ZeRO partitions gradients, so it does not; `check_algorithm` refuses an algorithm that needs it.
"""

from __future__ import annotations

import contextlib
from typing import Any, Mapping

import torch

from AlphaBrain.training.trainer_utils.optim import build_optimizer, build_scheduler
from AlphaBrain.utils.errors import ConfigError

_PLAIN_DISTRIBUTED = ("NO", "MULTI_CPU", "MULTI_GPU")
# accelerate modes whose optimizers own the gradients: param.grad is not the whole gradient after backward.
_SHARDED_GRADIENTS = {"DEEPSPEED": "DeepSpeed", "FSDP": "FSDP", "MEGATRON_LM": "Megatron-LM"}


class AccelerateBackend:
    """accelerate without DeepSpeed: one process or DDP (gloo on CPU, NCCL on GPU), any mixed precision."""

    name = "accelerate"
    saves_mid_task = True

    def __init__(self, accelerator: Any, trainer_cfg: Any) -> None:
        self.accelerator = accelerator
        kind = str(getattr(accelerator.distributed_type, "value", accelerator.distributed_type)).upper()
        self.sharding = _SHARDED_GRADIENTS.get(kind)
        self.keeps_param_grad = self.sharding is None
        self.cfg = trainer_cfg
        self.accumulation = int(trainer_cfg.gradient_accumulation_steps)
        clip = trainer_cfg.gradient_clipping
        self.clip = None if clip is None else float(clip)
        self.model: Any = None

    def prepare(self, model: torch.nn.Module) -> None:
        self.model = self.accelerator.prepare(model)

    @property
    def policy(self) -> torch.nn.Module:
        """The unwrapped policy (accelerate's unwrap_model walks every submodule: call it once per task)."""
        return self.accelerator.unwrap_model(self.model)

    def start_task(self, steps: int) -> None:
        acc = self.accelerator
        optimizer = build_optimizer(self.policy, self.cfg)
        # accelerate's optimizer / clipping wrappers exist for loss scaling, DeepSpeed, FSDP and XLA; on a plain
        # (or DDP) run they only add per-step checks, so then torch's own are used.
        plain = acc.scaler is None and str(acc.distributed_type.value) in _PLAIN_DISTRIBUTED
        self._clip_grad_norm = torch.nn.utils.clip_grad_norm_ if plain else acc.clip_grad_norm_
        self.optimizer = optimizer if plain else acc.prepare(optimizer)
        self.scheduler = build_scheduler(self.optimizer, self.cfg, steps)

    def sync(self, last_micro: bool):
        # Under DDP every backward all-reduces unless told not to: only the last micro-batch syncs.
        return contextlib.nullcontext() if last_micro else self.accelerator.no_sync(self.model)

    def autocast(self):
        return self.accelerator.autocast()

    def backward(self, loss: torch.Tensor) -> None:
        self.accelerator.backward(loss / self.accumulation)

    def micro_batch_done(self) -> None:
        pass

    def optimizer_step(self) -> None:
        if self.clip is not None:
            self._clip_grad_norm(self.model.parameters(), self.clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()

    def lr(self) -> float:
        return self.scheduler.get_last_lr()[0]

    def state_dict(self) -> dict:
        scaler = self.accelerator.scaler
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": None if scaler is None else scaler.state_dict()}

    def load_state_dict(self, state: Mapping) -> None:
        """After `start_task`: the optimizer and schedule continue where the checkpoint left them."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.accelerator.scaler is not None and state.get("scaler") is not None:
            self.accelerator.scaler.load_state_dict(state["scaler"])


class DeepSpeedBackend:
    """One DeepSpeed engine for the whole stream (ZeRO-2 by default), called directly.

    accelerate's DeepSpeed integration wants model and optimizer in one `prepare` call and
    cannot rebuild the optimizer per task; here the engine is built once and each task clears
    the optimizer state and rebuilds the LR schedule, which is what a fresh AdamW per task means.
    `engine.backward` scales by 1 / accumulation itself and `engine.step` only steps at the
    accumulation boundary, so it is called after every micro-batch.
    """

    name = "deepspeed"
    saves_mid_task = False

    def __init__(self, ds_config: Any, trainer_cfg: Any, micro_batch_size: int, mixed_precision: str = "no") -> None:
        from AlphaBrain.training.trainer_utils.deepspeed_direct import resolve_config

        self.cfg = trainer_cfg
        self.config = resolve_config(ds_config, trainer_cfg, micro_batch_size, mixed_precision)
        self.accumulation = int(self.config["gradient_accumulation_steps"])
        self.zero_stage = int(self.config.get("zero_optimization", {}).get("stage", 0))
        self.sharding = f"DeepSpeed ZeRO stage {self.zero_stage}"
        # Stage 2 leaves param.grad None; stage 1 reduces into its own partitions as well, so only stage 0
        # (plain data parallelism) guarantees the whole, averaged gradient in param.grad.
        self.keeps_param_grad = self.zero_stage == 0
        self.model: Any = None
        self.engine: Any = None

    def prepare(self, model: torch.nn.Module) -> None:
        from AlphaBrain.training.trainer_utils.deepspeed_direct import import_deepspeed

        deepspeed = import_deepspeed()
        # gloo on CPU: DeepSpeed's CPU accelerator otherwise asks for oneCCL.
        deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
        engine, optimizer, _, _ = deepspeed.initialize(
            model=model, optimizer=build_optimizer(model, self.cfg), config=self.config
        )
        self.model = self.engine = engine
        self._base_optimizer = getattr(optimizer, "optimizer", optimizer)  # the torch AdamW inside ZeRO's wrapper

    @property
    def policy(self) -> torch.nn.Module:
        return self.engine.module

    def start_task(self, steps: int) -> None:
        self._base_optimizer.state.clear()
        self.scheduler = build_scheduler(self._base_optimizer, self.cfg, steps)

    def sync(self, last_micro: bool):
        return contextlib.nullcontext()  # the engine reduces at the accumulation boundary itself

    def autocast(self):
        return contextlib.nullcontext()  # the engine runs the forward in its own precision

    def backward(self, loss: torch.Tensor) -> None:
        self.engine.backward(loss)

    def micro_batch_done(self) -> None:
        self.engine.step()  # an optimizer step (with the config's clipping) only at the boundary

    def optimizer_step(self) -> None:
        self.scheduler.step()

    def lr(self) -> float:
        return self.scheduler.get_last_lr()[0]

    def state_dict(self) -> dict:
        # ZeRO partitions the optimizer state over the ranks: saving it needs the engine's own checkpointing.
        raise NotImplementedError("mid-task checkpoints under DeepSpeed (check_mid_task refuses them up front)")


def check_algorithm(algorithm: Any, backend: Any) -> None:
    """Refuse an algorithm that reads `param.grad` after backward on a backend that does not keep it, or one that
    writes the weights itself on a backend that keeps a master copy of them."""
    if getattr(algorithm, "needs_param_grad", False) and not backend.keeps_param_grad:
        raise ConfigError(
            f'Algorithm "{algorithm.name}" (continual_learning.algorithm.name) reads param.grad after backward, which '
            f"{backend.sharding} does not leave whole (gradients live in the backend's partitioned buffers). "
            "Train it with plain DDP (run_cl_train.sh without --deepspeed, no FSDP config) or with "
            "zero_optimization.stage 0, or use an algorithm that does not need param.grad (ewc, er, derpp, mir)."
        )
    if getattr(algorithm, "writes_weights", False) and backend.sharding is not None:
        raise ConfigError(
            f'Algorithm "{algorithm.name}" (continual_learning.algorithm.name) writes the weights itself, but '
            f"{backend.sharding} keeps its own master copy of them and would overwrite those writes at its next "
            "step. Train it with plain DDP (run_cl_train.sh without --deepspeed, no FSDP config)."
        )


def check_lora(algorithm: Any, lora_enabled: bool) -> None:
    """Refuse, before anything is read, a method built on LoRA adapters in a run without LoRA."""
    if getattr(algorithm, "requires_lora", False) and not lora_enabled:
        raise ConfigError(
            f'Algorithm "{algorithm.name}" trains LoRA adapters on a frozen backbone, but this run has lora.enabled=false. '
            "Set lora.enabled=true (-- lora.enabled=true) with a model that has a VLM backbone "
            "(e.g. configs/continual_learning/models/qwengr00t_tiny.yaml; the tiny CNN model has none)."
        )


def check_mid_task(backend: Any, save_interval: int) -> None:
    """Refuse mid-task checkpoints, before anything is written, on a backend that cannot save them."""
    if save_interval and not backend.saves_mid_task:
        raise ConfigError(
            f"trainer.save_interval={save_interval} (mid-task checkpoints) is not supported under {backend.name} yet; "
            "task-end checkpoints are. Set trainer.save_interval=0, or train without --deepspeed."
        )


def build_backend(accelerator: Any, cfg: Any, deepspeed_config: Mapping | str | None = None):
    """DeepSpeed when a config is given or accelerate was launched with DeepSpeed; else accelerate."""
    if deepspeed_config is None and str(accelerator.distributed_type.value) == "DEEPSPEED":
        deepspeed_config = accelerator.state.deepspeed_plugin.deepspeed_config
    if deepspeed_config is not None:
        return DeepSpeedBackend(deepspeed_config, cfg.trainer, int(cfg.datasets.vla_data.per_device_batch_size),
                                str(cfg.trainer.mixed_precision))
    return AccelerateBackend(accelerator, cfg.trainer)

"""Small stand-ins shared by the algorithm tests: a toy policy, toy task datasets, trainer helpers.

The toy policy satisfies the part of the policy contract the algorithms use
(`per_sample_action_loss`, `action_outputs`, `forward`) on samples with a 3-vector
"x", so gradients and outputs can be checked by hand in milliseconds.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from AlphaBrain.training.continual_learning.algorithms import CLContext
from AlphaBrain.training.continual_learning.train import ContinualVLATrainer

HORIZON, ACTION_DIM = 2, 2


class ToyPolicy(nn.Module):
    """x[3] -> MLP -> action chunk [2, 2]. `dropout` > 0 makes training-mode outputs differ from eval-mode ones."""

    def __init__(self, seed: int = 0, dropout: float = 0.0, freeze_body: bool = False):
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.body = nn.Sequential(nn.Linear(3, 16), nn.Tanh())
            self.drop = nn.Dropout(dropout)
            self.head = nn.Linear(16, HORIZON * ACTION_DIM)
        self.register_buffer("scale", torch.ones(1))
        if freeze_body:
            self.body.requires_grad_(False)

    def action_outputs(self, examples):
        x = torch.from_numpy(np.stack([e["x"] for e in examples]))
        return (self.head(self.drop(self.body(x))) * self.scale).view(-1, HORIZON, ACTION_DIM)

    def per_sample_action_loss(self, examples):
        target = torch.from_numpy(np.stack([e["action"] for e in examples]))
        return (self.action_outputs(examples) - target).square().mean(dim=(1, 2))

    def forward(self, examples):
        return {"action_loss": self.per_sample_action_loss(examples).mean()}


class ToyTask:
    """Task t: sample i has a fixed random x and action (t + 1) * tanh(x) pattern; ref (t, i, 0)."""

    def __init__(self, task: int, n: int = 12):
        self.task, self.n = task, n
        self.base_dataset = self

    def __len__(self):
        return self.n

    def ref(self, i):
        return (self.task, int(i), 0)

    def get_ref(self, ref):
        task, i, _ = ref
        x = np.random.default_rng([task, i]).normal(size=3).astype(np.float32)
        action = ((task + 1) * np.tanh(np.outer([1.0, -1.0], x[:2]))).astype(np.float32)
        return {"x": x, "action": action, "task_id": task}

    def batch(self, size: int = 4, start: int = 0) -> list[dict]:
        return [self.get_ref(self.ref(i)) for i in range(start, start + size)]


def context(task: int, model: nn.Module, accumulation: int = 1, accelerator=None, data=None) -> CLContext:
    data = ToyTask(task) if data is None else data
    return CLContext(task, model, data, None, accelerator, num_tasks=3, steps=10,
                     gradient_accumulation_steps=accumulation)


def start_task(algo, ctx: CLContext) -> CLContext:
    """What the trainer does at a task start: `algo.ctx = ctx`, then `on_task_start(ctx)`."""
    algo.ctx = ctx
    algo.on_task_start(ctx)
    return ctx


def micro_batches(ctx: CLContext, steps: int):
    """(step, micro_batch) for `steps` optimizer steps, with `ctx`'s step fields set before each as the trainer sets them."""
    first = ctx.global_step
    for step in range(steps):
        ctx.step, ctx.global_step = step, first + step
        for micro in range(ctx.gradient_accumulation_steps):
            ctx.micro_batch = micro
            yield step, micro


def finish_task(algo, task: int, model: nn.Module) -> None:
    """on_task_start + on_task_end of `task` (no training steps in between)."""
    algo.on_task_end(start_task(algo, context(task, model)))


def perturb(model: nn.Module, scale: float = 0.1, seed: int = 1) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen) * scale)


def json_round_trip(state: dict) -> dict:
    return json.loads(json.dumps(state))


# ---------------------------------------------------------------- trainer runs
def algo_config(make_config, root, dataset, name, *extra, steps=2):
    return make_config(root, dataset, f"continual_learning.algorithm.name={name}", *extra, steps=steps)


def assert_every_task_checkpointed(run_dir, steps, tensors: bool) -> None:
    names = {p.name for p in (run_dir / "checkpoints").iterdir()}
    for k in range(3):
        prefix = f"task_{k}_id{k}_steps_{(k + 1) * steps}"
        assert {f"{prefix}_pytorch_model.pt", f"{prefix}_cl_state.json"} <= names, sorted(names)
        assert (f"{prefix}_cl_state.safetensors" in names) == tensors, sorted(names)


class Crash(Exception):
    pass


def assert_crash_and_resume_is_exact(make_config, root, dataset, name, steps=3) -> None:
    """A run that crashes inside task 1 and resumes from task 0's checkpoint ends bitwise equal to an unbroken one."""
    full = ContinualVLATrainer(algo_config(make_config, root / "a", dataset, name, steps=steps)).train()
    trainer = ContinualVLATrainer(algo_config(make_config, root / "b", dataset, name, steps=steps))
    trainer.prepare_training()
    original, calls = trainer.algorithm.observe, {"n": 0}

    def crashing(batch, task_id):
        calls["n"] += 1
        if task_id == 1 and calls["n"] == steps + 2:
            raise Crash()
        return original(batch, task_id)

    trainer.algorithm.observe = crashing
    with pytest.raises(Crash):
        trainer.train()
    resumed = ContinualVLATrainer(algo_config(make_config, root / "b", dataset, name, "trainer.is_resume=true", steps=steps))
    resumed.train()

    from safetensors.torch import load_file

    prefix = f"task_2_id2_steps_{3 * steps}"
    a_dir, b_dir = full / "checkpoints", root / "b" / "run" / "checkpoints"
    for suffix, load in (("_pytorch_model.pt", lambda p: torch.load(p, weights_only=True)),
                         ("_cl_state.safetensors", load_file)):
        if not (a_dir / f"{prefix}{suffix}").exists():
            continue
        a, b = load(a_dir / f"{prefix}{suffix}"), load(b_dir / f"{prefix}{suffix}")
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), (suffix, key)
    sa = json.loads((a_dir / f"{prefix}_cl_state.json").read_text())
    sb = json.loads((b_dir / f"{prefix}_cl_state.json").read_text())
    assert sa["algorithm"] == sb["algorithm"]

"""Fixtures for the policy tests: small synthetic data shaped like a Meta-World run."""

from __future__ import annotations

import pytest
import torch

from AlphaBrain.dataloader.spec import DataSpec
from AlphaBrain.model import FRAMEWORK_REGISTRY, build_framework

# Contract tests run on every registered framework that can be built without downloaded weights.
CPU_FRAMEWORKS = sorted(name for name, cls in FRAMEWORK_REGISTRY.items() if not cls.needs_pretrained_weights)

# Settings that change what a policy computes (another head) and must satisfy the contract too:
# label -> (framework name, framework keys).
VARIANTS = {"TinyVLA[flow]": ("TinyVLA", {"action_model": {"head": "flow"}})}
CONTRACT_CASES = CPU_FRAMEWORKS + sorted(VARIANTS)


def base_name(name: str) -> str:
    return VARIANTS[name][0] if name in VARIANTS else name


@pytest.fixture(autouse=True)
def _one_thread_and_seed():
    # One intra-op thread: these batches are tiny, and with other jobs on the CPU two OpenMP
    # threads spin-wait on each other (measured: 150 small steps 2.4 s on 1 thread, 47 s on 2).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def spec() -> DataSpec:
    return DataSpec(state_dim=4, action_dim=4, action_horizon=8, num_cameras=1, image_size=(64, 64))


def build(name: str, spec: DataSpec, seed: int = 0, **framework_keys):
    """A registered framework, or a VARIANTS label, with `framework_keys` (top-level blocks) on top."""
    torch.manual_seed(seed)
    if name in VARIANTS:
        name, variant_keys = VARIANTS[name]
        framework_keys = {**variant_keys, **framework_keys}
    return build_framework({"framework": {"name": name, **framework_keys}}, spec)


def assert_loss_reaches_every_trainable_parameter(model, examples) -> None:
    """One training step: finite scalar loss; every trainable parameter gets a finite, non-zero gradient."""
    model.train().zero_grad()
    loss = model(examples)["action_loss"]
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    bad = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all())]
    assert bad == []
    zero = [n for n, p in model.named_parameters() if p.requires_grad and p.grad.abs().sum() == 0]
    assert zero == []

import math

import pytest
import torch
from omegaconf import OmegaConf

from AlphaBrain.training.trainer_utils.optim import build_optimizer, build_scheduler, lr_factor, param_groups
from AlphaBrain.utils.errors import ConfigError


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.vision = torch.nn.Linear(2, 2)
        self.action_model = torch.nn.Linear(2, 2)
        self.frozen = torch.nn.Linear(2, 2).requires_grad_(False)
        self.scale = torch.nn.Parameter(torch.ones(1))


def trainer_cfg(**lr):
    return OmegaConf.create({
        "learning_rate": {"base": 1e-3, **lr},
        "optimizer": {"name": "AdamW", "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.0},
        "lr_scheduler_type": "cosine_with_min_lr",
        "scheduler_specific_kwargs": {"min_lr": 1e-5},
        "warmup_ratio": 0.1,
    })


def test_per_module_learning_rates_and_frozen_params():
    groups = {g["name"]: g for g in param_groups(Net(), {"base": 1e-3, "action_model": 1e-2}, 0.0)}
    assert groups["action_model"]["lr"] == 1e-2 and groups["base"]["lr"] == 1e-3
    assert len(groups["base"]["params"]) == 3  # vision weight + bias + the model's own parameter; frozen excluded


def test_unknown_module_lists_modules():
    with pytest.raises(ConfigError, match='no top-level module "action_head".*action_model'):
        param_groups(Net(), {"base": 1e-3, "action_head": 1e-2}, 0.0)


def test_warmup_then_cosine_to_min_lr_per_group():
    net = Net()
    opt = build_optimizer(net, trainer_cfg(action_model=1e-2))
    sched = build_scheduler(opt, trainer_cfg(), total_steps=100)
    lrs = []
    for _ in range(100):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    base_idx = [g["name"] for g in opt.param_groups].index("base")
    base = [row[base_idx] for row in lrs]
    assert base[0] == pytest.approx(1e-3 / 10)           # warmup: 10 steps, linear from lr/10
    assert base[9] == pytest.approx(1e-3)
    assert max(base) == pytest.approx(1e-3)
    assert base[-1] == pytest.approx(1e-5, rel=0.05)     # decays to min_lr
    assert all(a >= b - 1e-12 for a, b in zip(base[10:], base[11:]))


def test_factor_shapes():
    f = lr_factor("cosine_with_min_lr", 0, 10, 0.1)
    assert f(0) == 1.0 and f(10) == pytest.approx(0.1) and f(5) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 2)))
    assert lr_factor("constant", 5, 10, 0.0)(0) == 1.0
    assert lr_factor("linear", 0, 10, 0.0)(10) == 0.0


def test_bad_scheduler_and_warmup():
    opt = build_optimizer(Net(), trainer_cfg())
    cfg = trainer_cfg()
    cfg.lr_scheduler_type = "cosine_min"
    with pytest.raises(ConfigError, match="lr_scheduler_type"):
        build_scheduler(opt, cfg, 10)
    cfg = trainer_cfg()
    cfg.warmup_ratio = 1.5
    with pytest.raises(ConfigError, match="warmup_ratio"):
        build_scheduler(opt, cfg, 10)

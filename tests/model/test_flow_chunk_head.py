"""The flow-matching chunk head of TinyVLA (`framework.action_model.head: flow`).

The policy contract runs on it through conftest.VARIANTS; these tests check what is its own:
it represents two modes where regression averages them, its samples reach the demonstrated chunks,
its evaluation loss is repeatable, and its settings are checked.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from AlphaBrain.dataloader.spec import DataSpec
from AlphaBrain.model.core.losses import masked_chunk_loss
from AlphaBrain.model.modules.action_heads import MLPChunkHead
from AlphaBrain.model.modules.flow_chunk_head import FlowChunkHead
from AlphaBrain.model.policies.tiny_vla import TinyActionModelConfig
from AlphaBrain.model.synthetic import synthetic_examples
from AlphaBrain.utils.errors import ConfigError

from conftest import build


def _bimodal_data(n: int = 64):
    # One observation, two demonstrated chunks: all +1 or all -1 (go left or right of an obstacle).
    features = torch.ones(n, 8)
    action = torch.ones(n, 2, 1)
    action[n // 2:] = -1.0
    return features, action, torch.ones(n, 2, dtype=torch.bool)


def _fit(head: torch.nn.Module, loss_fn, steps: int) -> None:
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    for _ in range(steps):
        loss = loss_fn().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_flow_head_keeps_both_modes_where_regression_averages_them():
    torch.manual_seed(0)
    features, action, mask = _bimodal_data()
    flow = FlowChunkHead(8, 64, 2, horizon=2, action_dim=1, steps=20, repeats=8)
    _fit(flow, lambda: flow.loss(features, action, mask), 600)
    regression = MLPChunkHead(8, 64, 2, horizon=2, action_dim=1)
    _fit(regression, lambda: masked_chunk_loss(regression(features), action, mask, "mse"), 300)

    flow.eval()
    samples = []
    with torch.no_grad():
        for seed in range(24):  # another starting noise per draw
            flow.noise_seed = seed
            samples.append(flow.sample(features[:1]).mean().item())
    samples = np.array(samples)
    mean_prediction = regression(features[:1]).mean().item()
    print(f"flow samples {np.round(samples, 2)}; regression {mean_prediction:.3f}")
    assert abs(mean_prediction) < 0.2  # the average of the two modes: an action no demo took
    assert (np.abs(samples) > 0.6).mean() >= 0.9  # the flow head lands on a mode...
    assert (samples > 0).any() and (samples < 0).any()  # ...and on both, depending on the noise


def test_fitted_policy_samples_the_demonstrated_chunks():
    spec = DataSpec(state_dim=4, action_dim=4, action_horizon=8, num_cameras=1, image_size=(32, 32))
    model = build("TinyVLA[flow]", spec, tiny={"image_size": 32, "random_shift": 0}).train()
    examples = synthetic_examples(spec, 4, seed=2)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    for _ in range(400):
        loss = model(examples)["action_loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    predicted = model.predict_action(examples)
    target = np.stack([ex["action"] for ex in examples])
    error = np.abs(predicted - target).mean()
    spread = np.abs(target - target.mean(axis=0)).mean()
    print(f"sampled chunk error {error:.3f}; the targets' spread around their mean {spread:.3f}")
    assert error < spread / 3


def test_evaluation_loss_is_repeatable_and_training_loss_draws_fresh_noise():
    spec = DataSpec(state_dim=4, action_dim=4, action_horizon=8, num_cameras=1, image_size=(32, 32))
    model = build("TinyVLA[flow]", spec, tiny={"image_size": 32})
    examples = synthetic_examples(spec, 3)
    model.eval()
    assert model(examples)["action_loss"].item() == model(examples)["action_loss"].item()
    model.train()
    assert model(examples)["action_loss"].item() != model(examples)["action_loss"].item()


def test_distillation_output_is_deterministic_and_differentiable():
    spec = DataSpec(state_dim=4, action_dim=4, action_horizon=8, num_cameras=1, image_size=(32, 32))
    model = build("TinyVLA[flow]", spec, tiny={"image_size": 32}).eval()
    examples = synthetic_examples(spec, 2)
    out = model.action_outputs(examples)
    assert out.shape == (2, 8, 4) and out.requires_grad
    torch.testing.assert_close(out, model.action_outputs(examples), rtol=0, atol=0)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("head", "diffusion", r"framework.action_model.head = 'diffusion' is not a valid choice.*Valid choices: mlp, flow"),
        ("head", "flwo", r'Did you mean "flow"'),
        ("flow_steps", 0, r"framework.action_model.flow_steps = 0 is out of range"),
        ("flow_repeats", 100, r"framework.action_model.flow_repeats = 100 is out of range"),
    ],
)
def test_bad_head_settings_are_explained(key, value, message):
    with pytest.raises(ConfigError, match=message):
        TinyActionModelConfig.from_block({key: value})

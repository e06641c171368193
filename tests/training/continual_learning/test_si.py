"""SI: the path integral against a hand-run optimizer, the Ω update, loss scaling and
accumulation, the refusal under ZeRO, tensor state, validation, and a trainer run."""

from types import SimpleNamespace

import pytest
import torch
from cl_toys import ToyPolicy, ToyTask, algo_config, assert_crash_and_resume_is_exact, json_round_trip, start_task
from accelerate.utils import DistributedType
from safetensors.torch import load_file, save_file

from AlphaBrain.training.continual_learning.algorithms import SI, CLContext
from AlphaBrain.training.continual_learning.train import ContinualVLATrainer
from AlphaBrain.utils.errors import ConfigError


def samples(task, n):
    return ToyTask(task, n).batch(n)


def trainable(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def ctx(model, task_id, accum=1, accelerator=None):
    return CLContext(task_id, model, None, None, accelerator, gradient_accumulation_steps=accum)


def run_task(algo, model, task_id, data, *, steps, accum=1, scale=None, accelerator=None, ascend_from=None):
    """Train with SGD + momentum through SI's hooks, as the trainer calls them, and compute ω by hand.

    Returns (ω by hand, θ at task start, ω from the gradient of loss + penalty). The hand computation takes the gradient of the action
    loss alone (autograd on the loss without the penalty) and the update the optimizer really made.
    From step `ascend_from` on, the optimizer climbs the loss (SGD's maximize), so some weights
    end the task with a negative ω.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.05, momentum=0.9)
    context = start_task(algo, ctx(model, task_id, accum, accelerator))
    start = trainable(model)
    omega = {n: torch.zeros_like(v) for n, v in start.items()}
    omega_total = {n: torch.zeros_like(v) for n, v in start.items()}
    for step in range(steps):
        task_grad = [torch.zeros_like(p) for p in params]
        for micro in range(accum):
            context.step, context.micro_batch = step, micro
            batch = [data[(step * accum + micro) % len(data)], data[(step * accum + micro + 1) % len(data)]]
            loss = model(batch)["action_loss"]
            penalty = algo.compute_penalty(model, batch)
            total = (loss if penalty is None else loss + penalty) / accum
            for acc, g in zip(task_grad, torch.autograd.grad(loss / accum, params, retain_graph=True)):
                acc += g
            (total * (scale or 1.0)).backward()
            algo.after_backward(model)
        if scale is not None:
            for p in params:
                p.grad /= scale
        total_grad = [p.grad.clone() for p in params]
        before = trainable(model)
        opt.param_groups[0]["maximize"] = ascend_from is not None and step >= ascend_from
        opt.step()
        opt.zero_grad(set_to_none=True)
        after = trainable(model)
        for n, g, g_total in zip(names, task_grad, total_grad):
            omega[n] -= g * (after[n] - before[n])
            omega_total[n] -= g_total * (after[n] - before[n])
    algo.on_task_end(context)
    return omega, start, omega_total


def expected_importance(omega, start, end, xi, old=None):
    return {n: ((old[n] if old else 0) + omega[n] / ((end[n] - start[n]) ** 2 + xi)).clamp(min=0) for n in omega}


def assert_dicts_close(actual, expected, **tol):
    assert actual.keys() == expected.keys()
    for n in expected:
        torch.testing.assert_close(actual[n], expected[n], **tol)


def test_path_integral_matches_a_hand_run_optimizer():
    model, data = ToyPolicy(), samples(0, 16)
    algo = SI(si_c=1.0, si_xi=1e-3)
    omega, start, _ = run_task(algo, model, 0, data, steps=10, ascend_from=6)
    end = trainable(model)
    # The last steps climb: both signs of ω occur, and Ω clamps the negative ones at 0.
    flat = torch.cat([w.flatten() for w in omega.values()])
    assert (flat > 0).any() and (flat < 0).any()
    assert_dicts_close(algo.term.importance, expected_importance(omega, start, end, 1e-3), rtol=1e-5, atol=1e-6)
    assert (torch.cat([v.flatten() for v in algo.term.importance.values()]) == 0).any()
    assert_dicts_close(algo.term.anchor, end, rtol=0, atol=0)


def test_second_task_accumulates_omega_with_the_action_loss_gradient_under_accumulation():
    model, data0, data1 = ToyPolicy(), samples(0, 16), samples(1, 16)
    algo = SI(si_c=0.5, si_xi=1e-2)
    run_task(algo, model, 0, data0, steps=5)
    omega0 = {n: v.clone() for n, v in algo.term.importance.items()}
    omega1, start1, omega1_total = run_task(algo, model, 1, data1, steps=4, accum=3)
    end1 = trainable(model)
    expected = expected_importance(omega1, start1, end1, 1e-2, old=omega0)
    assert_dicts_close(algo.term.importance, expected, rtol=1e-4, atol=1e-5)
    # The penalty's gradient was large enough that using param.grad as is would have given another Ω.
    wrong = expected_importance(omega1_total, start1, end1, 1e-2, old=omega0)
    assert max(float((wrong[n] - expected[n]).abs().max()) for n in expected) > 1e-2
    assert algo.consolidated == [0, 1]


def test_fp16_loss_scaling_is_undone_and_a_skipped_inf_step_adds_nothing():
    class FakeScaler:
        def is_enabled(self):
            return True

        def get_scale(self):
            return 1024.0

    acc = SimpleNamespace(distributed_type=DistributedType.NO, scaler=FakeScaler())
    model, data = ToyPolicy(), samples(0, 16)
    reference_model = ToyPolicy()
    reference = SI()
    run_task(reference, reference_model, 0, data, steps=3)

    algo = SI()
    omega, start, _ = run_task(algo, model, 0, data, steps=3, scale=1024.0, accelerator=acc)
    assert_dicts_close(algo.term.importance, reference.term.importance, rtol=1e-5, atol=1e-6)

    # An overflowing step: the scaler skips optimizer.step, θ does not move, ω gets no nan.
    start_task(algo, ctx(model, 1, accelerator=acc))
    model(data[:2])["action_loss"].backward()
    model.head.weight.grad[0, 0] = float("inf")
    algo.after_backward(model)
    model.zero_grad()
    algo.on_task_end(algo.ctx)
    assert_dicts_close(algo.term.importance, reference.term.importance, rtol=1e-5, atol=1e-6)


def test_missing_param_grad_is_a_clear_error():
    model, algo = ToyPolicy(), SI()
    start_task(algo, ctx(model, 0))
    with pytest.raises(ConfigError, match="no gradient in param.grad.*ZeRO"):
        algo.after_backward(model)  # as after a ZeRO-2 backward: every param.grad is None


def test_tensor_state_round_trip_gives_the_same_penalty(tmp_path):
    model, data = ToyPolicy(), samples(0, 16)
    algo = SI(si_c=0.3)
    run_task(algo, model, 0, data, steps=3)
    run_task(algo, model, 1, samples(1, 16), steps=3)
    save_file(algo.tensor_state_dict(), str(tmp_path / "cl.safetensors"))
    state = json_round_trip(algo.state_dict())
    assert {k.split(".")[0] for k in algo.tensor_state_dict()} == {"importance", "anchor"}

    restored = SI.from_config(algo.hparams)
    restored.load_state_dict(state)
    restored.load_tensor_state_dict(load_file(str(tmp_path / "cl.safetensors")))
    with torch.no_grad():
        model.head.weight.add_(0.1)
    assert restored.compute_penalty(model, samples(0, 2)).item() > 0
    assert torch.equal(restored.compute_penalty(model, samples(0, 2)), algo.compute_penalty(model, samples(0, 2)))
    assert restored.state_dict() == state


@pytest.mark.parametrize("key, value", [("si_c", -0.1), ("si_c", "x"), ("si_xi", 0.0), ("si_xi", -1e-3)])
def test_bad_hyperparameters_name_the_key(key, value):
    with pytest.raises(ConfigError, match=rf"continual_learning\.algorithm\.{key} must .*{value!r}"):
        SI.from_config({key: value})


def test_frozen_parameters_are_not_tracked():
    model, data = ToyPolicy(freeze_body=True), samples(0, 16)
    algo = SI()
    run_task(algo, model, 0, data, steps=2)
    assert set(algo.tensor_state_dict()) == {f"{kind}.head.{p}" for kind in ("importance", "anchor") for p in ("weight", "bias")}


def test_trainer_run_resumes_bitwise(synthetic_dataset, tmp_path, make_config):
    assert_crash_and_resume_is_exact(make_config, tmp_path, synthetic_dataset, "si", steps=3)


def test_trainer_run_with_gradient_accumulation_writes_nonnegative_importance(synthetic_dataset, tmp_path, make_config):
    cfg = algo_config(make_config, tmp_path, synthetic_dataset, "si", "trainer.gradient_accumulation_steps=2", steps=3)
    run = ContinualVLATrainer(cfg).train()
    for k in range(3):
        tensors = load_file(str(run / "checkpoints" / f"task_{k}_id{k}_steps_{3 * (k + 1)}_cl_state.safetensors"))
        importance = [v for key, v in tensors.items() if key.startswith("importance.")]
        assert importance and len(importance) * 2 == len(tensors)
        assert all(bool((v >= 0).all()) for v in importance) and any(bool((v > 0).any()) for v in importance)

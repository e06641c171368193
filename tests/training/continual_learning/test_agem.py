"""A-GEM: the projection formula, when it fires, rank-independence, refusal under DeepSpeed, state, a trainer run."""

import copy
import json

import pytest
import torch
from cl_toys import (
    ToyPolicy,
    algo_config,
    assert_crash_and_resume_is_exact,
    assert_every_task_checkpointed,
    context,
    finish_task,
    json_round_trip,
    start_task,
)

from AlphaBrain.training.continual_learning.algorithms import AGEM, get_algorithm_class
from AlphaBrain.training.continual_learning.algorithms.rehearsal_based.agem import project_gradient
from AlphaBrain.training.continual_learning.train import ContinualVLATrainer
from AlphaBrain.utils.errors import ConfigError


def flat_grad(model):
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


def memory_reference_gradient(algo, model, task=0):
    """g_ref by hand: when the memory batch is the whole (one-task) memory, its mean loss is order-independent."""
    stored = algo.buffer.samples_at([(task, i) for i in range(algo.buffer.get_task_size(task))])
    loss = model.per_sample_action_loss(stored).mean()
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(model.parameters()))])


def noise_like(ref, seed):
    """Random direction with the norm of `ref`."""
    noise = torch.randn(ref.shape, generator=torch.Generator().manual_seed(seed))
    return noise * ref.norm() / noise.norm()


def set_grad(model, flat):
    offset = 0
    for p in model.parameters():
        p.grad = flat[offset:offset + p.numel()].view_as(p).clone()
        offset += p.numel()


def agem_after_task_0(model, **hparams):
    algo = AGEM.from_config({"buffer_size_per_task": 4, "agem_mem_batch_size": 4, **hparams})
    algo.bind_runtime(seed=1)
    finish_task(algo, 0, model)
    start_task(algo, context(1, model))
    return algo


def test_registered_with_alias():
    assert get_algorithm_class("agem") is AGEM and get_algorithm_class("a-gem") is AGEM


def test_conflicting_gradient_is_projected_exactly_as_the_formula():
    model = ToyPolicy()
    algo = agem_after_task_0(model)
    ref = memory_reference_gradient(algo, model)
    g = -ref + 0.5 * noise_like(ref, seed=0)
    assert torch.dot(g, ref) < 0
    set_grad(model, g)

    algo.after_backward(model)

    expected = g - torch.dot(g, ref) / torch.dot(ref, ref) * ref
    projected = flat_grad(model)
    assert torch.allclose(projected, expected, atol=1e-6, rtol=1e-5)
    assert torch.dot(projected, ref) >= -1e-5 * ref.norm() * g.norm()
    assert algo.stats == {"1": {"steps": 1, "projected": 1}}


def test_aligned_gradient_is_left_unchanged():
    model = ToyPolicy()
    algo = agem_after_task_0(model)
    ref = memory_reference_gradient(algo, model)
    g = ref + 0.5 * noise_like(ref, seed=1)
    assert torch.dot(g, ref) > 0
    set_grad(model, g)
    algo.after_backward(model)
    assert torch.equal(flat_grad(model), g)
    assert algo.stats == {"1": {"steps": 1, "projected": 0}}


def test_projection_helper_against_a_flat_computation():
    shapes = [(3,), (2, 2), (1,)]
    params = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
    g = torch.tensor([1.0, -2.0, 0.5, 3.0, -1.0, 0.0, 2.0, 4.0])
    r = torch.tensor([-1.0, 1.0, 0.0, -2.0, 0.5, 1.0, 0.0])  # the last parameter has no reference gradient
    params[0].grad, params[1].grad, params[2].grad = g[:3].clone(), g[3:7].reshape(2, 2).clone(), g[7:].clone()
    refs = [r[:3].clone(), r[3:7].reshape(2, 2).clone(), None]
    assert project_gradient(params, refs)
    expected = g[:7] - torch.dot(g[:7], r) / torch.dot(r, r) * r
    assert torch.allclose(torch.cat([params[0].grad, params[1].grad.reshape(-1)]), expected)
    assert torch.equal(params[2].grad, g[7:])  # no reference gradient: untouched


def test_missing_gradient_counts_as_zero():
    p = torch.nn.Parameter(torch.zeros(2))
    q = torch.nn.Parameter(torch.zeros(2))
    p.grad = torch.tensor([1.0, 0.0])
    assert project_gradient([p, q], [torch.tensor([-1.0, 0.0]), torch.tensor([0.0, 1.0])])
    # g = (1, 0, 0, 0), r = (-1, 0, 0, 1): g·r = -1, r·r = 2 -> g - (-1/2) r = (0.5, 0, 0, 0.5)
    assert torch.allclose(p.grad, torch.tensor([0.5, 0.0])) and torch.allclose(q.grad, torch.tensor([0.0, 0.5]))


def test_only_the_last_micro_batch_of_a_step_projects():
    model = ToyPolicy()
    algo = agem_after_task_0(model)
    ctx = start_task(algo, context(1, model, accumulation=2))
    ref = memory_reference_gradient(algo, model)
    set_grad(model, -ref)
    algo.after_backward(model)  # micro-batch 1 of 2: gradient still partial
    assert torch.equal(flat_grad(model), -ref) and algo.stats == {}
    ctx.micro_batch = 1
    algo.after_backward(model)  # micro-batch 2 of 2: the step's gradient
    assert flat_grad(model).abs().max() < 1e-5  # -r projected onto r's orthogonal complement is 0
    assert algo.stats == {"1": {"steps": 1, "projected": 1}}


def test_nothing_happens_while_the_memory_is_empty():
    model = ToyPolicy()
    algo = AGEM.from_config({})
    start_task(algo, context(0, model))
    set_grad(model, torch.ones(sum(p.numel() for p in model.parameters())))
    algo.after_backward(model)
    assert torch.equal(flat_grad(model), torch.ones_like(flat_grad(model))) and algo.stats == {}


def test_every_rank_projects_identically_and_the_training_rng_is_untouched():
    """Memory larger than the memory batch and a stochastic (dropout) forward: ranks must still agree."""
    base = ToyPolicy(dropout=0.5)
    results = []
    for rank in (0, 1):
        model = copy.deepcopy(base)
        algo = AGEM.from_config({"buffer_size_per_task": 8, "agem_mem_batch_size": 3})
        algo.bind_runtime(seed=5, rank=rank, world_size=2)
        finish_task(algo, 0, model)
        start_task(algo, context(1, model))
        model.eval()  # g: against the whole memory's gradient (deterministic), so the step surely conflicts
        set_grad(model, -memory_reference_gradient(algo, model))
        model.train()
        before = torch.get_rng_state()
        algo.after_backward(model)
        assert torch.equal(torch.get_rng_state(), before)
        assert algo.stats == {"1": {"steps": 1, "projected": 1}}
        results.append(flat_grad(model))
    assert torch.equal(results[0], results[1])


@pytest.mark.parametrize("params, key", [
    ({"agem_mem_batch_size": 0}, "agem_mem_batch_size"),
    ({"agem_mem_batch_size": 2.5}, "agem_mem_batch_size"),
    ({"agem_mem_batch_size": True}, "agem_mem_batch_size"),
    ({"buffer_size_per_task": -3}, "buffer_size_per_task"),
    ({"agem_memory_batch_size": 4}, "agem_memory_batch_size.*Did you mean"),
])
def test_bad_hyperparameters_name_the_key(params, key):
    with pytest.raises(ConfigError, match=key):
        AGEM.from_config(params)


def test_state_round_trip_gives_the_same_projection():
    model = ToyPolicy()
    algo = AGEM.from_config({"buffer_size_per_task": 8, "agem_mem_batch_size": 3})
    algo.bind_runtime(seed=2)
    finish_task(algo, 0, model)
    algo.stats = {"0": {"steps": 3, "projected": 1}}
    restored = AGEM.from_config(algo.hparams)
    restored.bind_runtime(seed=2)
    restored.load_state_dict(json_round_trip(algo.state_dict()))
    assert restored.tensor_state_dict() == {} and restored.stats == algo.stats
    grads = []
    for a in (algo, restored):
        start_task(a, context(1, model))
        set_grad(model, -torch.ones(sum(p.numel() for p in model.parameters())))
        a.after_backward(model)
        grads.append(flat_grad(model))
    assert torch.equal(grads[0], grads[1])


def test_trainer_run_writes_every_task_checkpoint(synthetic_dataset, tmp_path, make_config):
    steps = 2
    cfg = algo_config(make_config, tmp_path, synthetic_dataset, "agem", "trainer.gradient_accumulation_steps=2", steps=steps)
    run_dir = ContinualVLATrainer(cfg).train()
    assert_every_task_checkpointed(run_dir, steps, tensors=False)
    state = json.loads((run_dir / "checkpoints" / "task_2_id2_steps_6_cl_state.json").read_text())["algorithm"]
    assert state["name"] == "agem"
    # One reference gradient per optimizer step (not per micro-batch), from task 1 on.
    assert {t: c["steps"] for t, c in state["stats"].items()} == {"1": steps, "2": steps}


def test_crash_and_resume_is_exact(synthetic_dataset, tmp_path, make_config):
    assert_crash_and_resume_is_exact(make_config, tmp_path, synthetic_dataset, "agem")

"""EWC: the penalty's shape, the Fisher against a brute-force computation, online / offline
accumulation, tensor state, validation, and a trainer run that resumes bitwise."""

import copy
import json

import pytest
import torch
from cl_toys import ToyPolicy, ToyTask, algo_config, assert_crash_and_resume_is_exact, json_round_trip, perturb
from safetensors.torch import load_file, save_file

from AlphaBrain.training.continual_learning.algorithms import EWC, CLContext, build_cl_algorithm
from AlphaBrain.training.continual_learning.algorithms.regularization_based.ewc import (
    empirical_fisher,
    fisher_sample_indices,
)
from AlphaBrain.training.continual_learning.train import ContinualVLATrainer
from AlphaBrain.utils.errors import ConfigError


def ctx(model, data, task_id):
    return CLContext(task_id, model, data, None, None)


def samples(task, n):
    return ToyTask(task, n).batch(n)


BATCH = samples(0, 2)  # the batch a penalty is computed beside (EWC's does not depend on it)


def trainable(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def brute_force_fisher(model, samples):
    """Mean squared gradient, one sample at a time, each on a fresh copy of the model in eval mode."""
    total = None
    for sample in samples:
        m = copy.deepcopy(model).eval()
        m.per_sample_action_loss([sample])[0].backward()
        sq = {n: p.grad.detach() ** 2 for n, p in m.named_parameters() if p.requires_grad}
        total = sq if total is None else {n: total[n] + sq[n] for n in sq}
    return {n: v / len(samples) for n, v in total.items()}


def manual_penalty(model, fisher, anchor, lam):
    params = dict(model.named_parameters())
    return lam / 2 * sum((fisher[n] * (params[n].detach() - anchor[n]) ** 2).sum() for n in fisher)


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_fisher_equals_brute_force_per_sample_gradients(batch_size):
    model, data = ToyPolicy(dropout=0.5), samples(1, 10)  # dropout: a Fisher taken in train mode would differ
    model.train()
    indices = list(range(10))
    fisher = empirical_fisher(model, data, indices, batch_size)
    expected = brute_force_fisher(model, data)
    assert fisher.keys() == expected.keys() == {"body.0.weight", "body.0.bias", "head.weight", "head.bias"}
    for name in expected:
        torch.testing.assert_close(fisher[name], expected[name], rtol=1e-5, atol=1e-7)
    assert model.training, "the model's mode must be restored"
    assert all(p.grad is None for p in model.parameters()), "param.grad must not be touched"


def test_fisher_uses_the_sampled_subset_and_leaves_grads_and_rng_alone():
    model, data = ToyPolicy(dropout=0.5, freeze_body=True), samples(2, 40)
    for p in model.parameters():
        p.grad = torch.full_like(p, 7.0) if p.requires_grad else None
    rng_before = torch.get_rng_state()
    algo = EWC(fisher_num_samples=12, fisher_batch_size=5)
    algo.bind_runtime(seed=3, rank=1, world_size=2)
    algo.on_task_start(ctx(model, data, 0))
    algo.on_task_end(ctx(model, data, 0))
    idx = fisher_sample_indices(40, 12, seed=3, task_id=0)
    expected = brute_force_fisher(model, [data[i] for i in idx])
    assert algo.terms[0].importance.keys() == expected.keys() == {"head.weight", "head.bias"}  # frozen body left out
    for name, f in algo.terms[0].importance.items():
        torch.testing.assert_close(f, expected[name], rtol=1e-5, atol=1e-7)
    assert all(torch.equal(p.grad, torch.full_like(p, 7.0)) for p in model.parameters() if p.requires_grad)
    assert torch.equal(torch.get_rng_state(), rng_before)


def test_fisher_samples_depend_on_seed_and_task_not_rank():
    a = fisher_sample_indices(100, 30, seed=5, task_id=2)
    assert len(set(a.tolist())) == 30 and list(a) == sorted(a) and a.max() < 100
    assert (a == fisher_sample_indices(100, 30, seed=5, task_id=2)).all()
    assert not (a == fisher_sample_indices(100, 30, seed=5, task_id=3)).all()
    assert (fisher_sample_indices(10, 30, seed=5, task_id=2) == range(10)).all()  # fewer frames: all of them
    # Two ranks build the same Fisher: rank is not an input at all.
    model, data = ToyPolicy(), samples(4, 30)
    fishers = []
    for rank in (0, 1):
        algo = EWC(fisher_num_samples=8)
        algo.bind_runtime(seed=5, rank=rank, world_size=2)
        algo.on_task_start(ctx(model, data, 0))
        algo.on_task_end(ctx(model, data, 0))
        fishers.append(algo.tensor_state_dict())
    assert all(torch.equal(fishers[0][k], fishers[1][k]) for k in fishers[0])


def test_penalty_is_zero_at_the_anchor_and_quadratic_in_the_distance():
    model, data = ToyPolicy(freeze_body=True), samples(0, 16)
    algo = EWC(ewc_lambda=50.0)
    assert algo.compute_penalty(model, BATCH) is None  # before the first task ends
    algo.on_task_start(ctx(model, data, 0))
    assert algo.compute_penalty(model, BATCH) is None
    algo.on_task_end(ctx(model, data, 0))
    anchor = trainable(model)
    algo.on_task_start(ctx(model, data, 1))
    assert algo.compute_penalty(model, BATCH).item() == 0.0

    d = {n: torch.randn_like(v) * 0.1 for n, v in anchor.items()}
    params = dict(model.named_parameters())

    def penalty_at(k):
        with torch.no_grad():
            for n in d:
                params[n].copy_(anchor[n] + k * d[n])
        return algo.compute_penalty(model, BATCH)

    p1, p2 = penalty_at(1.0), penalty_at(2.0)
    assert p1.item() > 0
    torch.testing.assert_close(p2, 4 * p1, rtol=1e-5, atol=0)
    fisher = algo.terms[0].importance
    torch.testing.assert_close(p2, manual_penalty(model, fisher, anchor, 50.0), rtol=1e-5, atol=0)
    # Its gradient is λ F (θ − θ*), reaching the trainable parameters only.
    p2.backward()
    torch.testing.assert_close(params["head.weight"].grad, 50.0 * fisher["head.weight"] * 2 * d["head.weight"])
    assert params["body.0.weight"].grad is None


def test_online_accumulates_decayed_fisher_and_moves_the_anchor():
    model, data0, data1 = ToyPolicy(), samples(0, 12), samples(1, 12)
    algo = EWC(ewc_gamma=0.5, fisher_num_samples=100)
    algo.on_task_start(ctx(model, data0, 0))
    algo.on_task_end(ctx(model, data0, 0))
    f0 = brute_force_fisher(model, data0)
    perturb(model, 0.3, seed=1)
    algo.on_task_start(ctx(model, data1, 1))
    algo.on_task_end(ctx(model, data1, 1))
    f1 = brute_force_fisher(model, data1)

    assert len(algo.terms) == 1 and algo.consolidated == [0, 1]
    for name, f in algo.terms[0].importance.items():
        torch.testing.assert_close(f, 0.5 * f0[name] + f1[name], rtol=1e-5, atol=1e-7)
    end = trainable(model)
    assert all(torch.equal(algo.terms[0].anchor[n], end[n]) for n in end)
    assert set(algo.tensor_state_dict()) == {f"{kind}.{n}" for kind in ("fisher", "anchor") for n in end}


def test_offline_keeps_one_term_per_task_and_sums_their_penalties():
    model, data0, data1 = ToyPolicy(), samples(0, 12), samples(1, 12)
    algo = EWC(ewc_lambda=3.0, online=False, fisher_num_samples=100)
    algo.on_task_start(ctx(model, data0, 0))
    algo.on_task_end(ctx(model, data0, 0))
    f0, a0 = brute_force_fisher(model, data0), trainable(model)
    perturb(model, 0.3, seed=1)
    algo.on_task_start(ctx(model, data1, 1))
    algo.on_task_end(ctx(model, data1, 1))
    f1, a1 = brute_force_fisher(model, data1), trainable(model)
    perturb(model, 0.3, seed=2)

    assert len(algo.terms) == 2
    for term, f in zip(algo.terms, (f0, f1)):
        for name in f:
            torch.testing.assert_close(term.importance[name], f[name], rtol=1e-5, atol=1e-7)
    expected = manual_penalty(model, f0, a0, 3.0) + manual_penalty(model, f1, a1, 3.0)
    torch.testing.assert_close(algo.compute_penalty(model, BATCH), expected, rtol=1e-5, atol=0)
    keys = set(algo.tensor_state_dict())
    assert {k.split(".")[0] for k in keys} == {"task0", "task1"}
    assert "task1.fisher.head.weight" in keys and "task0.anchor.body.0.bias" in keys


def test_fisher_clip_caps_every_entry():
    model, data = ToyPolicy(), samples(0, 12)
    unclipped = empirical_fisher(model, data, range(12), 4)
    cap = float(torch.cat([f.flatten() for f in unclipped.values()]).median())
    algo = EWC(fisher_clip=cap, fisher_num_samples=12)
    algo.on_task_start(ctx(model, data, 0))
    algo.on_task_end(ctx(model, data, 0))
    for name, f in algo.terms[0].importance.items():
        torch.testing.assert_close(f, unclipped[name].clamp(max=cap))
    assert any((f == cap).any() for f in algo.terms[0].importance.values())


@pytest.mark.parametrize("online", [True, False])
def test_tensor_state_round_trip_gives_the_same_penalty(online, tmp_path):
    model, data = ToyPolicy(), samples(0, 12)
    algo = EWC(online=online, ewc_gamma=0.7)
    for task in range(2):
        algo.on_task_start(ctx(model, data, task))
        algo.on_task_end(ctx(model, data, task))
        perturb(model, 0.3, seed=task)
    save_file(algo.tensor_state_dict(), str(tmp_path / "cl.safetensors"))
    state = json_round_trip(algo.state_dict())

    restored = EWC.from_config(algo.hparams)
    restored.load_state_dict(state)
    restored.load_tensor_state_dict(load_file(str(tmp_path / "cl.safetensors")))
    restored.on_task_start(ctx(model, data, 2))
    assert torch.equal(restored.compute_penalty(model, BATCH), algo.compute_penalty(model, BATCH))
    assert restored.state_dict() == state


def test_resuming_with_the_other_mode_is_refused():
    algo = EWC(online=True)
    with pytest.raises(ConfigError, match="online EWC.*online=false.*online=true"):
        EWC(online=False).load_state_dict(algo.state_dict())


@pytest.mark.parametrize("key, value", [
    ("ewc_lambda", -1.0), ("ewc_lambda", "big"), ("ewc_gamma", 0.0), ("ewc_gamma", 1.5), ("online", "yes"),
    ("fisher_num_samples", 0), ("fisher_num_samples", 2.5), ("fisher_batch_size", 0), ("fisher_clip", 0.0),
])
def test_bad_hyperparameters_name_the_key(key, value):
    with pytest.raises(ConfigError, match=rf"continual_learning\.algorithm\.{key} must .*{value!r}"):
        EWC.from_config({key: value})


def test_built_from_yaml_with_documented_defaults():
    from AlphaBrain.config.loader import compose_config

    algo = build_cl_algorithm(compose_config([], ["continual_learning.algorithm.name=ewc",
                                                  "continual_learning.algorithm.ewc_lambda=10"]))
    assert isinstance(algo, EWC)
    assert algo.hparams == {**EWC.defaults(), "ewc_lambda": 10.0}


# ---------------------------------------------------------------------- trainer
def test_trainer_run_writes_tensor_state_and_resumes_bitwise(synthetic_dataset, tmp_path, make_config):
    assert_crash_and_resume_is_exact(make_config, tmp_path, synthetic_dataset, "ewc", steps=3)
    ckpts = tmp_path / "a" / "run" / "checkpoints"
    for k in range(3):
        prefix = ckpts / f"task_{k}_id{k}_steps_{3 * (k + 1)}"
        tensors = load_file(f"{prefix}_cl_state.safetensors")
        assert {key.split(".")[0] for key in tensors} == {"fisher", "anchor"}
        assert json.loads(open(f"{prefix}_cl_state.json").read())["algorithm"]["consolidated_tasks"] == list(range(k + 1))
    log = [json.loads(line) for line in (tmp_path / "a" / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [rec["penalty"] is None for rec in log] == [True] * 3 + [False] * 6  # no penalty before task 0 ends
    assert all(rec["penalty"] >= 0 for rec in log[3:]) and any(rec["penalty"] > 0 for rec in log[3:])


def test_short_offline_run_with_subsampled_fisher(synthetic_dataset, tmp_path, make_config):
    cfg = algo_config(make_config, tmp_path, synthetic_dataset, "ewc", "continual_learning.algorithm.online=false",
                      "continual_learning.algorithm.fisher_num_samples=8",
                      "continual_learning.algorithm.fisher_batch_size=4", steps=2)
    run = ContinualVLATrainer(cfg).train()
    tensors = load_file(str(run / "checkpoints" / "task_2_id2_steps_6_cl_state.safetensors"))
    assert {key.split(".")[0] for key in tensors} == {"task0", "task1", "task2"}

"""DER++: outputs stored at task end in eval mode, both loss terms, exact state round trip, a trainer run."""

import json

import pytest
import torch
from cl_toys import (
    ToyPolicy,
    ToyTask,
    algo_config,
    assert_crash_and_resume_is_exact,
    assert_every_task_checkpointed,
    context,
    finish_task,
    json_round_trip,
    perturb,
    start_task,
)
from safetensors.torch import load_file, save_file

from AlphaBrain.training.continual_learning.algorithms import DERPP, get_algorithm_class
from AlphaBrain.training.continual_learning.train import ContinualVLATrainer
from AlphaBrain.utils.errors import ConfigError, UserError


def derpp_after(tasks, model, **hparams):
    algo = DERPP.from_config({"buffer_size_per_task": 4, "derpp_mem_batch_size": 4, **hparams})
    algo.bind_runtime(seed=3)
    for t in range(tasks):
        finish_task(algo, t, model)
    start_task(algo, context(tasks, model))
    return algo


def penalty_on(algo, model, task=1):
    return algo.compute_penalty(model, ToyTask(task).batch())


def test_registered_with_alias():
    assert get_algorithm_class("derpp") is DERPP and get_algorithm_class("der++") is DERPP


def test_outputs_are_stored_at_task_end_in_eval_mode():
    model = ToyPolicy(dropout=0.5)  # training mode: outputs are random
    algo = derpp_after(1, model)
    assert model.training  # the mode is given back
    stored = algo.buffer.samples_at([(0, i) for i in range(4)])
    model.eval()
    with torch.no_grad():
        expected = model.action_outputs(stored)
    assert algo.outputs[0].shape == (4, 2, 2) and algo.outputs[0].dtype == torch.float32
    assert torch.equal(algo.outputs[0], expected)
    assert list(algo.tensor_state_dict()) == ["derpp.outputs.task_0"]


def test_no_penalty_before_anything_is_stored():
    model = ToyPolicy()
    algo = derpp_after(0, model)
    assert penalty_on(algo, model, task=0) is None


def test_output_term_vanishes_for_the_unchanged_model_and_grows_after_a_perturbation():
    model = ToyPolicy(dropout=0.5)
    algo = derpp_after(1, model, derpp_beta=0.0)
    model.eval()  # no dropout: the model reproduces exactly what it stored
    assert abs(float(penalty_on(algo, model).detach())) < 1e-12
    perturb(model)
    grown = penalty_on(algo, model)
    assert float(grown.detach()) > 1e-4
    model.train()
    penalty = penalty_on(algo, model)
    penalty.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_replay_term_is_the_mean_action_loss_on_memory():
    model = ToyPolicy()
    algo = derpp_after(1, model, derpp_alpha=0.5, derpp_beta=0.25)
    penalty = penalty_on(algo, model)
    # Memory batch = the whole (4-sample) memory, so the replay term is its mean loss; the output term is 0.
    stored = algo.buffer.samples_at([(0, i) for i in range(4)])
    expected = model.per_sample_action_loss(stored).mean()
    assert algo.last_terms["output_mse"] < 1e-12
    assert algo.last_terms["replay_action_loss"] == pytest.approx(float(expected.detach()), rel=1e-5)
    assert float(penalty.detach()) == pytest.approx(0.25 * float(expected.detach()), rel=1e-5)


def test_every_penalty_draws_its_own_memory_batches():
    model = ToyPolicy()
    algo = derpp_after(2, model, buffer_size_per_task=6, derpp_mem_batch_size=3, derpp_alpha=0.0)
    perturb(model)
    batch = ToyTask(2).batch()
    # The training batch is the same; the replay term is on a fresh draw from memory each time.
    draws = {float(algo.compute_penalty(model, batch).detach()) for _ in range(4)}
    assert len(draws) > 1


def test_tensor_state_round_trip_gives_the_same_penalty(tmp_path):
    model = ToyPolicy()
    algo = derpp_after(2, model, buffer_size_per_task=6, derpp_mem_batch_size=3)
    save_file(algo.tensor_state_dict(), str(tmp_path / "t.safetensors"))
    restored = DERPP.from_config(algo.hparams)
    restored.bind_runtime(seed=3)
    restored.load_state_dict(json_round_trip(algo.state_dict()))
    restored.load_tensor_state_dict(load_file(str(tmp_path / "t.safetensors")))
    assert sorted(restored.outputs) == [0, 1]
    perturb(model)
    model.eval()
    penalties = []
    for a in (algo, restored):
        start_task(a, context(2, model))
        penalties.append(penalty_on(a, model, task=2))
    assert float(penalties[0].detach()) > 0 and torch.equal(penalties[0], penalties[1])


def test_missing_stored_outputs_are_a_clear_error():
    model = ToyPolicy()
    algo = derpp_after(1, model)
    restored = DERPP.from_config(algo.hparams)
    restored.load_state_dict(json_round_trip(algo.state_dict()))
    with pytest.raises(UserError, match="task 0 is incomplete: 4 stored samples but none"):
        restored.load_tensor_state_dict({})


@pytest.mark.parametrize("params, key", [
    ({"derpp_alpha": -0.1}, "derpp_alpha"),
    ({"derpp_beta": "0.5"}, "derpp_beta"),
    ({"derpp_beta": float("inf")}, "derpp_beta"),
    ({"derpp_mem_batch_size": 0}, "derpp_mem_batch_size"),
    ({"buffer_size_per_task": 0}, "buffer_size_per_task"),
    ({"derpp_alpha": 0, "derpp_beta": 0.0}, "derpp_alpha and derpp_beta are both 0"),
])
def test_bad_hyperparameters_name_the_key(params, key):
    with pytest.raises(ConfigError, match=key):
        DERPP.from_config(params)


def test_trainer_run_writes_every_task_checkpoint(synthetic_dataset, tmp_path, make_config):
    steps = 2
    run_dir = ContinualVLATrainer(algo_config(make_config, tmp_path, synthetic_dataset, "derpp", steps=steps)).train()
    assert_every_task_checkpointed(run_dir, steps, tensors=True)
    ckpt = run_dir / "checkpoints" / "task_2_id2_steps_6"
    tensors = load_file(f"{ckpt}_cl_state.safetensors")
    sizes = json.loads(ckpt.with_name(ckpt.name + "_cl_state.json").read_text())["algorithm"]["buffer"]["task_sizes"]
    assert sorted(tensors) == [f"derpp.outputs.task_{t}" for t in range(3)]
    for t in range(3):
        assert tensors[f"derpp.outputs.task_{t}"].shape[0] == sizes[str(t)]
        assert torch.isfinite(tensors[f"derpp.outputs.task_{t}"]).all()
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["penalty"] is None for m in metrics] == [True] * steps + [False] * (2 * steps)


def test_crash_and_resume_is_exact(synthetic_dataset, tmp_path, make_config):
    assert_crash_and_resume_is_exact(make_config, tmp_path, synthetic_dataset, "derpp")

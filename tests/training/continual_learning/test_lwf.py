"""LwF: a frozen teacher snapshot, the distillation penalty, teacher restore on resume, a trainer run."""

import copy

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

from AlphaBrain.training.continual_learning.algorithms import LwF, get_algorithm_class
from AlphaBrain.training.continual_learning.train import ContinualVLATrainer
from AlphaBrain.utils.errors import ConfigError, UserError


def lwf_after_task_0(model, **hparams):
    algo = LwF.from_config(hparams)
    finish_task(algo, 0, model)
    start_task(algo, context(1, model))
    return algo


def penalty_on(algo, model, task=1):
    return algo.compute_penalty(model, ToyTask(task).batch())


def test_registered():
    assert get_algorithm_class("lwf") is LwF


def test_teacher_is_a_frozen_eval_copy_sharing_only_frozen_parameters():
    model = ToyPolicy(dropout=0.5, freeze_body=True)
    algo = lwf_after_task_0(model)
    teacher = algo.teacher
    assert model.training and not teacher.training
    assert not any(p.requires_grad for p in teacher.parameters())
    assert teacher.body[0].weight is model.body[0].weight  # frozen: shared, not copied
    assert teacher.head.weight is not model.head.weight and torch.equal(teacher.head.weight, model.head.weight)
    assert sorted(algo.tensor_state_dict()) == ["lwf.teacher.head.bias", "lwf.teacher.head.weight", "lwf.teacher.scale"]
    full = lwf_after_task_0(ToyPolicy())
    assert len(full.tensor_state_dict()) == len(ToyPolicy().state_dict())  # nothing frozen: everything stored


def test_no_penalty_on_the_first_task():
    model = ToyPolicy()
    algo = LwF.from_config({})
    start_task(algo, context(0, model))
    assert penalty_on(algo, model, task=0) is None


def test_penalty_vanishes_right_after_the_snapshot_and_grows_after_a_perturbation():
    model = ToyPolicy(dropout=0.5)
    algo = lwf_after_task_0(model, lwf_alpha=2.0)
    model.eval()  # the student matches the teacher exactly without dropout
    assert abs(float(penalty_on(algo, model).detach())) < 1e-12
    perturb(model)
    teacher_out = algo.teacher.action_outputs(ToyTask(1).batch()).detach()
    student_out = model.action_outputs(ToyTask(1).batch()).detach()
    expected = 2.0 * (student_out - teacher_out).square().mean()
    penalty = penalty_on(algo, model)
    assert float(penalty.detach()) > 1e-4
    assert float(penalty.detach()) == pytest.approx(float(expected), rel=1e-5)
    penalty.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert all(p.grad is None for p in algo.teacher.parameters())


def test_training_the_student_leaves_the_teacher_alone():
    model = ToyPolicy()
    algo = lwf_after_task_0(model)
    before = {k: v.clone() for k, v in algo.teacher.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(3):
        loss = model(ToyTask(1).batch())["action_loss"] + penalty_on(algo, model)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    after = algo.teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(model.head.weight, after["head.weight"])


@pytest.mark.parametrize("freeze_body", [False, True])
def test_teacher_is_restored_from_tensor_state(tmp_path, freeze_body):
    model = ToyPolicy(freeze_body=freeze_body)
    algo = lwf_after_task_0(model)
    perturb(model)  # the student moved on: a teacher rebuilt from it alone would be wrong
    save_file(algo.tensor_state_dict(), str(tmp_path / "t.safetensors"))
    restored = LwF.from_config(algo.hparams)
    restored.load_state_dict(json_round_trip(algo.state_dict()))
    restored.load_tensor_state_dict(load_file(str(tmp_path / "t.safetensors")))
    assert restored.tensor_state_dict().keys() == algo.tensor_state_dict().keys()  # handed on before the rebuild
    student = copy.deepcopy(model)
    start_task(restored, context(1, student))
    for key, value in algo.teacher.state_dict().items():
        assert torch.equal(restored.teacher.state_dict()[key], value), key
    model.eval()
    student.eval()
    assert torch.equal(penalty_on(algo, model), penalty_on(restored, student))


def test_missing_teacher_weights_are_a_clear_error():
    algo = lwf_after_task_0(ToyPolicy())
    restored = LwF.from_config({})
    restored.load_state_dict(json_round_trip(algo.state_dict()))
    restored.load_tensor_state_dict({})
    with pytest.raises(UserError, match="teacher was taken after task 0.*no teacher weights"):
        restored.on_task_start(context(1, ToyPolicy()))


def test_teacher_from_another_trainable_set_is_refused():
    algo = lwf_after_task_0(ToyPolicy(freeze_body=True))
    restored = LwF.from_config({})
    restored.load_state_dict(json_round_trip(algo.state_dict()))
    restored.load_tensor_state_dict(algo.tensor_state_dict())
    with pytest.raises(UserError, match="does not fit this model.*trainable here but not stored: \\['body"):
        restored.on_task_start(context(1, ToyPolicy(freeze_body=False)))


@pytest.mark.parametrize("params, key", [
    ({"lwf_alpha": 0}, "lwf_alpha must be a finite number > 0"),
    ({"lwf_alpha": -1.0}, "lwf_alpha"),
    ({"lwf_alpha": float("nan")}, "lwf_alpha"),
    ({"lwf_alpha": "1"}, "lwf_alpha"),
    ({"lwf_alpha": True}, "lwf_alpha"),
    ({"lwf_temperature": 2.0}, "lwf_temperature"),
])
def test_bad_hyperparameters_name_the_key(params, key):
    with pytest.raises(ConfigError, match=key):
        LwF.from_config(params)


def test_trainer_run_writes_every_task_checkpoint(synthetic_dataset, tmp_path, make_config):
    steps = 2
    run_dir = ContinualVLATrainer(algo_config(make_config, tmp_path, synthetic_dataset, "lwf", steps=steps)).train()
    assert_every_task_checkpointed(run_dir, steps, tensors=True)
    model = torch.load(run_dir / "checkpoints" / "task_1_id1_steps_4_pytorch_model.pt", weights_only=True)
    teacher = load_file(str(run_dir / "checkpoints" / "task_1_id1_steps_4_cl_state.safetensors"))
    # The teacher saved with task k is the policy at the end of task k.
    assert sorted(teacher) == sorted(f"lwf.teacher.{k}" for k in model)
    assert all(torch.equal(teacher[f"lwf.teacher.{k}"], v) for k, v in model.items())


def test_crash_and_resume_is_exact(synthetic_dataset, tmp_path, make_config):
    assert_crash_and_resume_is_exact(make_config, tmp_path, synthetic_dataset, "lwf")

"""The continual trainer: hook call order for every algorithm, run-dir artifacts, resume rules."""

import json

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from AlphaBrain.training.continual_learning.algorithms import HOOKS, algorithm_names, get_algorithm_class
from AlphaBrain.training.continual_learning.train import ContinualVLATrainer
from AlphaBrain.utils.errors import UserError


def recording_subclass(cls, log):
    """`cls` with every hook (and nothing else) recorded before running the real implementation."""

    def wrap(hook):
        def method(self, *args):
            if hook in ("on_task_start", "on_task_end"):
                log.append((hook, args[0].task_id))
            elif hook in ("observe", "modify_batch"):
                log.append((hook, args[1]))
            else:
                log.append((hook,))
            return getattr(super(recorder, self), hook)(*args)

        return method

    recorder = type(f"Recording{cls.__name__}", (cls,), {h: wrap(h) for h in HOOKS})
    return recorder


# On the tiny CNN, which has no LoRA: a requires_lora method is refused there (test_lora_per_task.py).
@pytest.mark.parametrize("name", [n for n in algorithm_names() if not get_algorithm_class(n).requires_lora])
def test_hook_call_order(name, synthetic_dataset, tmp_path, make_config):
    log = []
    steps = 2
    cfg = make_config(tmp_path, synthetic_dataset, f"continual_learning.algorithm.name={name}", steps=steps)
    trainer = ContinualVLATrainer(cfg)
    trainer.prepare_training()
    cls = type(trainer.algorithm)
    trainer.algorithm = recording_subclass(cls, log).from_config(getattr(trainer.algorithm, "hparams", {}))
    trainer.algorithm.bind_runtime(seed=trainer.seed)
    trainer.unwrapped.register_forward_hook(lambda *a: log.append(("forward",)))
    handle = register_optimizer_step_post_hook(lambda *a: log.append(("optimizer_step",)))
    try:
        trainer.train()
    finally:
        handle.remove()

    expected = []
    for task in range(3):
        expected.append(("on_task_start", task))
        for _ in range(steps):
            expected += [("observe", task), ("modify_batch", task), ("forward",), ("compute_penalty",),
                         ("after_backward",), ("optimizer_step",), ("after_optimizer_step",)]
        expected.append(("on_task_end", task))
    assert log == expected


def test_run_dir_artifacts(synthetic_dataset, tmp_path, make_config):
    cfg = make_config(tmp_path, synthetic_dataset)
    run_dir = ContinualVLATrainer(cfg).train()
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == [
        "task_0_id0_steps_3_cl_state.json", "task_0_id0_steps_3_pytorch_model.pt",
        "task_1_id1_steps_6_cl_state.json", "task_1_id1_steps_6_pytorch_model.pt",
        "task_2_id2_steps_9_cl_state.json", "task_2_id2_steps_9_pytorch_model.pt",
    ]
    for f in ("config.yaml", "stream.json", "dataset_statistics.json", "metrics.jsonl"):
        assert (run_dir / f).is_file(), f
    stream = json.loads((run_dir / "stream.json").read_text())
    assert [t["task_id"] for t in stream["tasks"]] == [0, 1, 2]
    state = json.loads((run_dir / "checkpoints" / "task_2_id2_steps_9_cl_state.json").read_text())
    assert state["algorithm"]["name"] == "er"
    assert state["algorithm"]["buffer"]["task_sizes"] == {"0": 16, "1": 16, "2": 16}
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 9 and all("loss" in rec and "steps_per_s" in rec for rec in lines)
    assert no_temp_files(run_dir)


def no_temp_files(run_dir):
    return not [p for p in run_dir.rglob("*") if p.name.endswith(".tmp")]


def test_existing_run_is_not_overwritten_without_resume(synthetic_dataset, tmp_path, make_config):
    ContinualVLATrainer(make_config(tmp_path, synthetic_dataset, steps=1)).train()
    with pytest.raises(UserError, match="already holds checkpoints.*--resume"):
        ContinualVLATrainer(make_config(tmp_path, synthetic_dataset, steps=1)).train()


def test_resume_refuses_another_stream(synthetic_dataset, tmp_path, make_config):
    ContinualVLATrainer(make_config(tmp_path, synthetic_dataset, steps=1)).train()
    cfg = make_config(tmp_path, synthetic_dataset, "trainer.is_resume=true",
                      f"continual_learning.task_sequence.base_data_mix={synthetic_dataset}",
                      "continual_learning.task_sequence.task_order=[2,1,0]", steps=1)
    with pytest.raises(UserError, match="Cannot resume.*task stream"):
        ContinualVLATrainer(cfg).train()


class Crash(Exception):
    pass


def test_crash_mid_task_then_resume_is_bitwise_identical(synthetic_dataset, tmp_path, make_config):
    """In-process variant of the kill test: a crash inside task 2 of 3 (the subprocess SIGKILL test is slower)."""
    full = ContinualVLATrainer(make_config(tmp_path / "a", synthetic_dataset, steps=4)).train()

    trainer = ContinualVLATrainer(make_config(tmp_path / "b", synthetic_dataset, steps=4))
    trainer.prepare_training()
    original = trainer.algorithm.modify_batch
    calls = {"n": 0}

    def crashing(batch, task_id):
        calls["n"] += 1
        if task_id == 1 and calls["n"] == 6:
            raise Crash()
        return original(batch, task_id)

    trainer.algorithm.modify_batch = crashing
    with pytest.raises(Crash):
        trainer.train()
    ckpts = sorted(p.name for p in (tmp_path / "b" / "run" / "checkpoints").glob("*_cl_state.json"))
    assert ckpts == ["task_0_id0_steps_4_cl_state.json"]

    resumed = ContinualVLATrainer(make_config(tmp_path / "b", synthetic_dataset, "trainer.is_resume=true", steps=4))
    resumed.train()
    assert_same_final_checkpoint(full, tmp_path / "b" / "run")


def assert_same_final_checkpoint(run_a, run_b, prefix="task_2_id2_steps_12"):
    a = torch.load(run_a / "checkpoints" / f"{prefix}_pytorch_model.pt", weights_only=True)
    b = torch.load(run_b / "checkpoints" / f"{prefix}_pytorch_model.pt", weights_only=True)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    sa = json.loads((run_a / "checkpoints" / f"{prefix}_cl_state.json").read_text())
    sb = json.loads((run_b / "checkpoints" / f"{prefix}_cl_state.json").read_text())
    assert sa["algorithm"]["buffer"]["refs"] == sb["algorithm"]["buffer"]["refs"]
    assert sa["algorithm"] == sb["algorithm"]


def test_resume_with_a_different_model_is_a_clear_error(synthetic_dataset, tmp_path, make_config):
    ContinualVLATrainer(make_config(tmp_path, synthetic_dataset, steps=1)).train()
    for state in (tmp_path / "run" / "checkpoints").glob("task_2_*"):
        state.unlink()  # pretend the run stopped after task 1
    cfg = make_config(tmp_path, synthetic_dataset, "trainer.is_resume=true", "framework.tiny.vision_dim=32", steps=1)
    with pytest.raises(UserError, match="does not fit the TinyVLA model.*resume with the run.s own settings"):
        ContinualVLATrainer(cfg).train()


def test_bad_trainer_settings_fail_before_anything_is_written(synthetic_dataset, tmp_path, make_config):
    for bad in ("trainer.lr_scheduler_type=cosine_min", "trainer.learning_rate.action_head=1e-3",
                "trainer.scheduler_specific_kwargs.min_lrr=1e-6", "trainer.report_to=mlflow"):
        with pytest.raises(UserError):
            ContinualVLATrainer(make_config(tmp_path, synthetic_dataset, bad, steps=1)).train()
        assert not (tmp_path / "run").exists(), bad

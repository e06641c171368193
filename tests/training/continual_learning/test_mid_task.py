"""Mid-task checkpoints (trainer.save_interval): a run stopped inside a task and resumed equals an uninterrupted one.

The in-process tests crash the trainer with an exception; the slow ones SIGKILL a real training
process (one process, and two under torchrun/gloo) at a random step inside task 2 of 3.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from AlphaBrain.config.loader import config_to_yaml
from AlphaBrain.runs import RunDir, resolve_checkpoint
from AlphaBrain.training.continual_learning.algorithms import algorithm_names, get_algorithm_class
from AlphaBrain.training.continual_learning.data_order import TaskBatchOrder
from AlphaBrain.training.continual_learning.train import ContinualVLATrainer
from AlphaBrain.utils.errors import ConfigError, UserError

from test_multiprocess import REPO, algorithm_overrides, free_port

STEPS, INTERVAL = 6, 2  # 3 tasks x 6 steps; mid-task checkpoints after global steps 2, 4, 8, 10, 14, 16
FINAL = f"task_2_id2_steps_{3 * STEPS}"


class Crash(Exception):
    pass


def mid_config(make_config, root: Path, dataset: Path, name: str = "er", *extra: str):
    return make_config(root, dataset, *algorithm_overrides(name), f"trainer.save_interval={INTERVAL}",
                       "trainer.keep_last=0", *extra, steps=STEPS)


def final_state(run: Path, prefix: str = FINAL) -> tuple[dict, dict, dict]:
    ckpt = run / "checkpoints"
    weights = torch.load(ckpt / f"{prefix}_pytorch_model.pt", weights_only=True)
    state = json.loads((ckpt / f"{prefix}_cl_state.json").read_text())
    tensors_file = ckpt / f"{prefix}_cl_state.safetensors"
    tensors = {}
    if tensors_file.exists():
        from safetensors.torch import load_file

        tensors = load_file(str(tensors_file))
    return weights, state["algorithm"], tensors


def assert_same_run(a: Path, b: Path, prefix: str = FINAL) -> None:
    wa, sa, ta = final_state(a, prefix)
    wb, sb, tb = final_state(b, prefix)
    assert wa.keys() == wb.keys()
    differ = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not differ, f"weights differ after resume: {differ[:5]}"
    assert sa == sb, "the algorithm's state differs after resume"
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def crash_at(trainer: ContinualVLATrainer, global_step: int) -> None:
    """Raise right after optimizer step `global_step` (before any checkpoint of that step)."""
    step = trainer.backend.optimizer_step

    def crashing():
        step()
        if trainer.global_step + 1 == global_step:
            raise Crash()

    trainer.backend.optimizer_step = crashing


# Every registered algorithm at its test settings, plus the modes that change what an algorithm keeps between steps.
# LoRA-only methods (requires_lora) cannot train the tiny CNN: test_lora_per_task.py resumes them on QwenGR00T tiny.
MODES = [(name, ()) for name in algorithm_names() if not get_algorithm_class(name).requires_lora] + [
    ("mir", ("continual_learning.algorithm.mir_mode=per_step",))]


@pytest.mark.parametrize("name,extra", MODES, ids=[n + "".join("-" + e.split("=")[1] for e in x) for n, x in MODES])
def test_crash_inside_a_task_then_resume_is_bitwise_identical(name, extra, make_config, synthetic_dataset, tmp_path):
    full = ContinualVLATrainer(mid_config(make_config, tmp_path / "a", synthetic_dataset, name, *extra)).train()

    trainer = ContinualVLATrainer(mid_config(make_config, tmp_path / "b", synthetic_dataset, name, *extra))
    trainer.prepare_training()
    crash_at(trainer, 11)  # task 2 (position 1) runs global steps 7..12; its mid-task checkpoints are 8 and 10
    with pytest.raises(Crash):
        trainer.train()
    run = RunDir(tmp_path / "b" / "run")
    assert [c.position for c in run.checkpoints()] == [0]
    assert [c.global_step for c in run.mid_task_checkpoints()] == [2, 4, 8, 10]

    resumed = ContinualVLATrainer(mid_config(make_config, tmp_path / "b", synthetic_dataset, name, *extra,
                                             "trainer.is_resume=true"))
    resumed.prepare_training()
    assert resumed.start_position == 1 and resumed.mid_task_resume.ckpt.global_step == 10
    resumed.train()
    assert_same_run(full, run.path)


def test_crash_inside_task_0_resumes_from_the_built_model(make_config, synthetic_dataset, tmp_path):
    full = ContinualVLATrainer(mid_config(make_config, tmp_path / "a", synthetic_dataset)).train()
    trainer = ContinualVLATrainer(mid_config(make_config, tmp_path / "b", synthetic_dataset))
    trainer.prepare_training()
    crash_at(trainer, 5)
    with pytest.raises(Crash):
        trainer.train()
    assert RunDir(tmp_path / "b" / "run").checkpoints() == []
    ContinualVLATrainer(mid_config(make_config, tmp_path / "b", synthetic_dataset, "er", "trainer.is_resume=true")).train()
    assert_same_run(full, tmp_path / "b" / "run")


def test_keep_last_prunes_mid_task_checkpoints_only(make_config, synthetic_dataset, tmp_path):
    cfg = make_config(tmp_path, synthetic_dataset, f"trainer.save_interval={INTERVAL}", "trainer.keep_last=2",
                      steps=STEPS)
    run = RunDir(ContinualVLATrainer(cfg).train())
    assert [c.global_step for c in run.mid_task_checkpoints()] == [14, 16]
    assert [c.position for c in run.checkpoints()] == [0, 1, 2]  # task ends are never deleted
    leftovers = {p.name.split("_steps_")[1].split("_")[0] for p in run.mid_task_dir.iterdir() if p.name.startswith("task_")}
    assert leftovers == {"14", "16"}, "a pruned checkpoint left files behind"


def test_evaluation_sees_mid_task_checkpoints_only_by_name(make_config, synthetic_dataset, tmp_path):
    run = RunDir(ContinualVLATrainer(mid_config(make_config, tmp_path, synthetic_dataset)).train())
    assert [c.prefix.name for c in run.checkpoints()] == ["task_0_id0_steps_6", "task_1_id1_steps_12", FINAL]
    assert resolve_checkpoint(run.path, "last").name == f"{FINAL}_pytorch_model.pt"
    named = resolve_checkpoint(run.path, "mid_task/task_1_id1_steps_10")
    assert named == (run.mid_task_dir / "task_1_id1_steps_10_pytorch_model.pt").resolve()


def test_resume_with_another_process_count_is_refused(make_config, synthetic_dataset, tmp_path):
    cfg = mid_config(make_config, tmp_path, synthetic_dataset)
    trainer = ContinualVLATrainer(cfg)
    trainer.prepare_training()
    crash_at(trainer, 9)
    with pytest.raises(Crash):
        trainer.train()
    marker = next(RunDir(tmp_path / "run").mid_task_dir.glob("task_1_id1_steps_8_cl_state.json"))
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "world_size": 2}))
    with pytest.raises(UserError, match="written by 2 process.*this run has 1.*Resume with 2"):
        ContinualVLATrainer(mid_config(make_config, tmp_path, synthetic_dataset, "er", "trainer.is_resume=true")).train()


def test_mid_task_settings_are_checked(make_config, synthetic_dataset, tmp_path):
    with pytest.raises(ConfigError, match="trainer.save_interval"):
        make_config(tmp_path, synthetic_dataset, "trainer.save_interval=-1")
    with pytest.raises(ConfigError, match="save_checkpoint_per_task=true"):
        make_config(tmp_path, synthetic_dataset, "trainer.save_interval=5",
                    "continual_learning.save_checkpoint_per_task=false")


@pytest.mark.parametrize("frames,batch,world", [(50, 4, 1), (50, 4, 2), (13, 4, 3), (3, 4, 2)])
def test_batch_order_resumes_at_any_batch(frames, batch, world):
    def first(n, rank, start=0):
        return list(itertools.islice(iter(TaskBatchOrder(frames, batch, 7, 1, rank, world, start)), n))

    for rank in range(world):
        whole = first(40, rank)
        for start in (1, 5, 17):
            assert first(40 - start, rank, start) == whole[start:]
    epoch = [b for r in range(world) for b in TaskBatchOrder(frames, batch, 7, 1, r, world).epoch_batches(0)]
    flat = [i for b in epoch for i in b]
    if frames >= batch * world:
        assert len(flat) == len(set(flat)), "processes read overlapping frames within an epoch"


# ---------------------------------------------------------------- SIGKILL, real processes
def train_command(config: Path, nproc: int) -> list[str]:
    module = ["-m", "AlphaBrain.training.continual_learning.train", "--config_yaml", str(config)]
    if nproc == 1:
        return [sys.executable, *module]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
            "--master_port", str(free_port()), *module]


def start(config: Path, nproc: int) -> subprocess.Popen:
    """A training run in the background, its output in a file next to the config (a pipe could fill and block it)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = open(config.with_suffix(".log"), "w")
    proc = subprocess.Popen(train_command(config, nproc), cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    proc.log = Path(log.name)
    log.close()  # the child holds its own descriptor
    return proc


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the process and every descendant (torchrun starts its workers in sessions of their own)."""
    import psutil

    family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    for p in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(signal.SIGKILL)
    proc.wait()
    psutil.wait_procs(family, timeout=30)


def kill_after(proc: subprocess.Popen, metrics: Path, global_step: int, timeout: float = 240) -> None:
    """SIGKILL the training processes once the training log reaches `global_step`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if metrics.exists():
            # Only whole lines: the poll can catch the trainer's write of a line half done.
            lines = metrics.read_text().split("\n")[:-1]
            steps = [json.loads(line)["step"] for line in lines if line.strip()]
            if steps and steps[-1] >= global_step:
                kill_tree(proc)
                return
        if proc.poll() is not None:
            pytest.fail(f"training ended before step {global_step}:\n{proc.log.read_text()[-3000:]}")
        time.sleep(0.005)
    kill_tree(proc)
    pytest.fail(f"training did not reach step {global_step} in {timeout} s")


def write_config(make_config, root: Path, dataset: Path, name: str, *extra: str) -> Path:
    cfg = make_config(root, dataset, *algorithm_overrides(name), "trainer.save_interval=3", "trainer.keep_last=2",
                      *extra, steps=10)
    path = root / f"{name}{'_resume' if extra else ''}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config_to_yaml(cfg))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("name,nproc", [("er", 1), ("mir", 1), ("ewc", 1), ("derpp", 1), ("er", 2)])
def test_sigkill_inside_task_2_then_resume_equals_an_uninterrupted_run(name, nproc, make_config, synthetic_dataset,
                                                                        tmp_path):
    reference = start(write_config(make_config, tmp_path / "a", synthetic_dataset, name), nproc)
    victim = start(write_config(make_config, tmp_path / "b", synthetic_dataset, name), nproc)
    # Task 2 runs global steps 11..20, with mid-task checkpoints after 12, 15 and 18: stop after the first.
    target = random.Random(f"{name}{nproc}").randint(13, 17)
    kill_after(victim, tmp_path / "b" / "run" / "metrics.jsonl", target)
    run = RunDir(tmp_path / "b" / "run")
    assert [c.position for c in run.checkpoints()] == [0], "the kill landed after task 2 ended"
    assert run.mid_task_checkpoints()[-1].position == 1

    resumed = subprocess.run(train_command(write_config(make_config, tmp_path / "b", synthetic_dataset, name,
                                                        "trainer.is_resume=true"), nproc),
                             cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resuming inside task 2" in resumed.stdout
    assert reference.wait(timeout=600) == 0, reference.log.read_text()[-3000:]
    assert_same_run(tmp_path / "a" / "run", run.path, "task_2_id2_steps_30")

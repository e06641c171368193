"""run_cl_train.sh end to end: the three algorithm selections, bad inputs, and a real kill + resume."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import re
import torch

REPO = Path(__file__).resolve().parents[3]
WRAPPER = REPO / "scripts" / "run_continual_learning_scripts" / "run_cl_train.sh"
FAST = ["framework.tiny.image_size=32", "framework.tiny.vision_channels=[16,16,16]",
        "framework.tiny.vision_feature_channels=8", "framework.tiny.vision_dim=64"]


def run_wrapper(args, run_root, extra=(), check=False):
    env = {**os.environ, "ALPHABRAIN_PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    cmd = ["bash", str(WRAPPER), *args, "--", f"run_root_dir={run_root}", *FAST, *extra]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def checkpoint_names(run_dir):
    return sorted(p.name for p in (run_dir / "checkpoints").iterdir())


@pytest.mark.parametrize(
    "algo_args,extra,expected_algo",
    [
        (["--algo", "er"], [], "er"),                                   # legacy replay block of cl_base.yaml
        (["--algo", "none"], [], "sequential"),
        ([], ["continual_learning.replay.enabled=false", "continual_learning.algorithm.name=er"], "er"),  # generic style
        ([], ["continual_learning.replay.enabled=false"], "sequential"),  # neither style set
        (["--algo", "multitask"], ["continual_learning.algorithm.whole_stream=true"], "multitask"),
    ],
)
def test_smoke_run_leaves_every_task_checkpoint(algo_args, extra, expected_algo, synthetic_dataset, tmp_path):
    args = ["--model", "tiny", "--dataset", str(synthetic_dataset), "--smoke", "--run-id", "r", *algo_args]
    run_wrapper(args, tmp_path, extra, check=True)
    run_dir = tmp_path / "r"
    assert checkpoint_names(run_dir) == [
        f"task_{k}_id{k}_steps_{5 * (k + 1)}{suffix}" for k in range(3) for suffix in ("_cl_state.json", "_pytorch_model.pt")
    ]
    state = json.loads((run_dir / "checkpoints" / "task_2_id2_steps_15_cl_state.json").read_text())
    assert state["algorithm"]["name"] == expected_algo
    if expected_algo == "er":
        assert state["algorithm"]["buffer"]["task_sizes"] == {"0": 36, "1": 36, "2": 36}  # <= 500 per task: whole task
    if expected_algo == "multitask":
        # whole_stream: the trainer hands the algorithm every task, so all three are stored after task 0.
        first = json.loads((run_dir / "checkpoints" / "task_0_id0_steps_5_cl_state.json").read_text())
        assert first["algorithm"]["buffer"]["task_sizes"] == {"0": 36, "1": 36, "2": 36}


def corrupt_copy(src, dst):
    shutil.copytree(src, dst)
    victim = next(dst.glob("data/**/*.parquet"))
    victim.write_bytes(b"this is not a parquet file" * 10)
    return dst


def other_stats(tmp_path):
    from AlphaBrain.dataloader.synthetic import write_synthetic_dataset

    other = write_synthetic_dataset(tmp_path / "other", num_tasks=2, episodes_per_task=1, episode_length=6,
                                    image_size=(16, 16), state_dim=6, action_dim=3, seed=3)
    out = tmp_path / "other_stats.json"
    subprocess.run([sys.executable, str(REPO / "scripts/run_continual_learning_scripts/compute_dataset_statistics.py"),
                    "--dataset-dir", str(other), "--out", str(out)], check=True, capture_output=True)
    return out


def single_task(tmp_path):
    from AlphaBrain.dataloader.synthetic import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path / "single", num_tasks=1, episodes_per_task=2, episode_length=6,
                                   image_size=(16, 16), seed=4)


BAD_INPUTS = {
    "unknown yaml key": (lambda ds, tmp: (["--dataset", str(ds)], ["continual_learning.steps_per_tsk=3"]),
                         r"Unknown config key.*steps_per_tsk.*steps_per_task"),
    "unknown model": (lambda ds, tmp: (["--model", "tinyy", "--dataset", str(ds)], []), r"unknown --model 'tinyy'.*tiny"),
    "unknown algo": (lambda ds, tmp: (["--algo", "erx", "--dataset", str(ds)], []), r"Unknown CL algorithm.*erx.*Did you mean \"er\".*mir.*sequential"),
    "unknown dataset": (lambda ds, tmp: (["--dataset", "libero_gaol"], []), r"Unknown task sequence.*libero_goal"),
    "missing dataset dir": (lambda ds, tmp: (["--dataset", str(tmp / "nope")], []), r"nope.*(does not exist|not found)"),
    "no meta/info.json": (lambda ds, tmp: (["--dataset", str((tmp / "empty" / "sub").mkdir(parents=True) or tmp / "empty")], []),
                          r"meta/info.json"),
    "corrupt parquet": (lambda ds, tmp: (["--dataset", str(corrupt_copy(ds, tmp / "corrupt"))], []), r"parquet"),
    "replay ratio": (lambda ds, tmp: (["--dataset", str(ds)], ["continual_learning.replay.replay_batch_ratio=1.5"]),
                     r"replay_batch_ratio must be a number in \(0, 1\), got 1\.5"),
    "one-task stream": (lambda ds, tmp: (["--dataset", str(single_task(tmp))], []), r"at least 2 tasks"),
    "foreign statistics": (lambda ds, tmp: (["--dataset", str(ds)], [f"datasets.vla_data.dataset_statistics={other_stats(tmp)}"]),
                           r"(dim|dimension).*recompute"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_clear_line(case, synthetic_dataset, tmp_path):
    make, pattern = BAD_INPUTS[case]
    args, extra = make(synthetic_dataset, tmp_path)
    runs = tmp_path / "runs"
    # A later --model overrides the default one given first.
    proc = run_wrapper(["--model", "tiny", "--smoke", "--run-id", "bad", *args], runs, extra)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert re.search(pattern, errors[0], re.IGNORECASE), errors[0]
    assert not (runs / "bad").exists()  # nothing half-written


@pytest.mark.slow
def test_sigkill_during_task_two_then_resume_matches_uninterrupted(synthetic_dataset, tmp_path):
    args = ["--model", "tiny", "--algo", "er", "--dataset", str(synthetic_dataset), "--run-id", "r"]
    extra = ["continual_learning.steps_per_task=40", "datasets.vla_data.per_device_batch_size=4"]
    run_wrapper(args, tmp_path / "full", extra, check=True)

    env = {**os.environ, "ALPHABRAIN_PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    cmd = ["bash", str(WRAPPER), *args, "--", f"run_root_dir={tmp_path / 'killed'}", *FAST, *extra]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    first = tmp_path / "killed" / "r" / "checkpoints" / "task_0_id0_steps_40_cl_state.json"
    while not first.exists():
        assert proc.poll() is None, "training ended before the first checkpoint"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    survivors = [n for n in checkpoint_names(tmp_path / "killed" / "r") if n.endswith("_cl_state.json")]
    assert "task_2_id2_steps_120_cl_state.json" not in survivors

    run_wrapper([*args, "--resume"], tmp_path / "killed", extra, check=True)
    prefix = "task_2_id2_steps_120"
    a = torch.load(tmp_path / "full/r/checkpoints" / f"{prefix}_pytorch_model.pt", weights_only=True)
    b = torch.load(tmp_path / "killed/r/checkpoints" / f"{prefix}_pytorch_model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    sa = json.loads((tmp_path / "full/r/checkpoints" / f"{prefix}_cl_state.json").read_text())
    sb = json.loads((tmp_path / "killed/r/checkpoints" / f"{prefix}_cl_state.json").read_text())
    assert sa["algorithm"]["buffer"] == sb["algorithm"]["buffer"]


@pytest.mark.slow
def test_two_cpu_processes(synthetic_dataset, tmp_path):
    """--gpus 2 on a machine without GPUs: two ranks over gloo (Accelerator(cpu=True)), one set of checkpoints."""
    if torch.cuda.is_available():
        pytest.skip("this test is about CPU-only machines")
    proc = run_wrapper(["--model", "tiny", "--algo", "er", "--dataset", str(synthetic_dataset), "--smoke",
                        "--gpus", "2", "--run-id", "mp"], tmp_path, check=True)
    assert "2 process(es)" in proc.stdout
    assert len([n for n in checkpoint_names(tmp_path / "mp") if n.endswith("_cl_state.json")]) == 3

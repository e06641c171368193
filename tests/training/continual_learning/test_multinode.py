"""Training on several machines, emulated on this host: scripts/slurm/cl_train_multinode.sbatch run with
stub `srun` / `scontrol` that start one run_cl_train.sh launcher per "node" on localhost.

What this covers is the launch (flags, node ranks, rendezvous, gloo on CPU) and that 2 machines x 1
process train exactly what 1 machine x 2 processes trains; not a real cluster's network or GPUs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[3]
SBATCH = REPO / "scripts" / "slurm" / "cl_train_multinode.sbatch"
WRAPPER = REPO / "scripts" / "run_continual_learning_scripts" / "run_cl_train.sh"
FAST = ["framework.tiny.image_size=32", "framework.tiny.vision_channels=[16,16,16]",
        "framework.tiny.vision_feature_channels=8", "framework.tiny.vision_dim=64",
        "continual_learning.task_sequence.num_tasks=2", "continual_learning.steps_per_task=2"]

# srun over SLURM_JOB_NUM_NODES "nodes" of this host: the command once per node, started together,
# SLURM_NODEID set, each node's output in node<N>.log; fails if any node fails.
SRUN = """#!/usr/bin/env bash
while [[ "$1" == -* ]]; do shift; done
pids=()
for ((n = 0; n < SLURM_JOB_NUM_NODES; n++)); do
  SLURM_NODEID=$n "$@" > "$STUB_OUT/node$n.log" 2>&1 & pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
exit $rc
"""
# Every node of the job is this host.
SCONTROL = """#!/usr/bin/env bash
[[ "$1 $2" == "show hostnames" ]] || exit 1
for ((n = 0; n < SLURM_JOB_NUM_NODES; n++)); do echo 127.0.0.1; done
"""
# A Python that records how it was called (no GPU: device_count() prints 0).
RECORDING_PYTHON = """#!/usr/bin/env bash
if [[ "$1" == -c ]]; then echo 0; exit 0; fi
echo "node$SLURM_NODEID $*" >> "$STUB_OUT/python_calls.txt"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stub_dir(tmp_path: Path, **scripts: str) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return bin_dir


def sbatch(tmp_path: Path, args: list[str], port: int, python: str) -> subprocess.CompletedProcess:
    """The sbatch script as Slurm would run it for a 2-node job, with the stubs on PATH."""
    bin_dir = stub_dir(tmp_path, srun=SRUN, scontrol=SCONTROL, recording_python=RECORDING_PYTHON)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "STUB_OUT": str(tmp_path),
           "SLURM_JOB_NODELIST": "node[01-02]", "SLURM_JOB_NUM_NODES": "2", "SLURM_JOB_ID": "4242",
           "SLURM_SUBMIT_DIR": str(REPO), "CL_MAIN_PROCESS_PORT": str(port), "OMP_NUM_THREADS": "1",
           "ALPHABRAIN_PYTHON": python if python != "recording" else str(bin_dir / "recording_python")}
    return subprocess.run(["bash", str(SBATCH), *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)


def test_sbatch_starts_one_launcher_per_node_with_its_rank(tmp_path):
    """The srun line expands, on node N, to run_cl_train.sh's machine flags and a torchrun with node rank N."""
    proc = sbatch(tmp_path, ["--model", "tiny", "--run-id", "r", "--", "x=1"], 29555, "recording")
    assert proc.returncode == 0, proc.stderr
    for n in range(2):
        log = (tmp_path / f"node{n}.log").read_text()
        assert (f"-m torch.distributed.run --nproc_per_node 1 --nnodes 2 --node_rank {n} "
                "--master_addr 127.0.0.1 --master_port 29555 -m AlphaBrain.training.continual_learning.train") in log
    calls = (tmp_path / "python_calls.txt").read_text().splitlines()
    launches = sorted(c for c in calls if "torch.distributed.run" in c)
    assert [c.split()[0] for c in launches] == ["node0", "node1"]
    assert all(c.endswith("run_id=r x=1") for c in launches)


def test_machine_flags_are_checked(tmp_path):
    for args, words in [
        (["--num-machines", "2", "--machine-rank", "2"], "--machine-rank must be an integer in 0..1"),
        (["--num-machines", "0"], "--num-machines must be an integer >= 1"),
        (["--num-machines", "2", "--machine-rank", "1", "--main-process-port", "2950"], "needs --main-process-ip"),
        (["--num-machines", "2", "--main-process-ip", "10.0.0.1"], "needs --main-process-port"),
        (["--main-process-port", "70000"], "must be an integer in 1..65535"),
    ]:
        proc = subprocess.run(["bash", str(WRAPPER), *args], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and words in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_two_machines_train_what_two_processes_on_one_machine_train(synthetic_dataset, tmp_path):
    """2 machines x 1 CPU process (gloo) through the sbatch script == 1 machine x 2 processes, bitwise."""
    if torch.cuda.is_available():
        pytest.skip("this test is about CPU-only machines")
    args = ["--model", "tiny", "--algo", "er", "--dataset", str(synthetic_dataset), "--smoke", "--run-id", "r"]
    multi = sbatch(tmp_path, [*args, "--", f"run_root_dir={tmp_path / 'multi'}", *FAST], free_port(), sys.executable)
    logs = multi.stderr + "\n".join(p.read_text() for p in sorted(tmp_path.glob("node*.log")))
    assert multi.returncode == 0, logs[-4000:]
    env = {**os.environ, "ALPHABRAIN_PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    single = subprocess.run(["bash", str(WRAPPER), *args, "--gpus", "2", "--", f"run_root_dir={tmp_path / 'single'}",
                             *FAST], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-4000:]

    a, b = tmp_path / "single" / "r" / "checkpoints", tmp_path / "multi" / "r" / "checkpoints"
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir()) and len(names) == 4
    for name in names:
        if name.endswith(".json"):
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
        else:  # the .pt zip names its records after the temporary file it was written to: compare the tensors
            sa, sb = torch.load(a / name, weights_only=True), torch.load(b / name, weights_only=True)
            assert sa.keys() == sb.keys()
            for k in sa:
                assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), (name, k)

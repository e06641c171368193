"""bench/bench_vla_gpu.py: skips cleanly without a GPU, and its measuring path runs on the tiny configs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "bench_vla_gpu.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU path")
def test_without_a_gpu_it_says_so_and_exits_0():
    proc = run()
    assert proc.returncode == 0, proc.stderr
    assert "no CUDA device; nothing measured" in proc.stdout


def test_tiny_configs_on_cpu_fill_every_column():
    proc = run("--device", "cpu", "--size", "tiny", "--models", "paligemma", "--steps", "1", "--warmup", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| paligemma")]
    assert [r.split("|")[2].strip() for r in rows] == ["lora", "full"]
    for r in rows:
        cells = [c.strip() for c in r.strip("|").split("|")]
        assert float(cells[5]) > 0 and float(cells[6]) > 0  # step ms, samples/s

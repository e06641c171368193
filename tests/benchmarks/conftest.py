"""Fixtures of the benchmark tests: simulators (Meta-World, LIBERO) need a headless GL backend."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")


@pytest.fixture(scope="session")
def metaworld_available() -> None:
    """Skip (with the reason) when the simulator cannot run here."""
    pytest.importorskip("mujoco")
    pytest.importorskip("metaworld")
    from mujoco import gl_context

    if gl_context.GLContext is None:
        pytest.skip("no OpenGL backend for MuJoCo (set MUJOCO_GL=egl and install Mesa)")


@pytest.fixture(scope="session")
def libero_available() -> None:
    """Skip (with the reason) when LIBERO cannot run here."""
    pytest.importorskip("mujoco")
    pytest.importorskip("robosuite")
    pytest.importorskip("libero.libero")
    from mujoco import gl_context

    if gl_context.GLContext is None:
        pytest.skip("no OpenGL backend for MuJoCo (set MUJOCO_GL=egl and install Mesa)")


#: What the shared libero_goal_mini dataset is generated with (one episode per task, small frames: fast).
MINI_ARGS = {"episodes_per_task": 1, "seed": 0, "image_size": 32}


@pytest.fixture(scope="session")
def libero_mini_data_dir(libero_available, tmp_path_factory):
    """$ALPHABRAIN_DATA_DIR holding libero_goal_mini/, generated once per test run with the user's command.

    Under pytest-xdist each worker has a session of its own: the folder is then shared by the run's
    workers, the first one generates it under a lock and the others reuse it (the command's cache).
    """
    import subprocess
    import sys

    from filelock import FileLock

    if not os.environ.get("PYTEST_XDIST_WORKER"):
        data, lock = tmp_path_factory.mktemp("libero_data"), None
    else:
        shared = tmp_path_factory.getbasetemp().parent  # this run's folder, above every worker's own
        data, lock = shared / "libero_data", FileLock(str(shared / "libero_data.lock"))
    env = {**os.environ, "ALPHABRAIN_DATA_DIR": str(data), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "AlphaBrain.benchmarks.libero.generate", "--stream", "libero_goal_mini",
           "--episodes-per-task", str(MINI_ARGS["episodes_per_task"]), "--seed", str(MINI_ARGS["seed"]),
           "--image-size", str(MINI_ARGS["image_size"]), "--no-progress"]
    if lock is None:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    else:
        with lock:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stderr + proc.stdout
    assert "success" in out or "Reusing" in out  # the expert table, or another worker's dataset reused
    return data

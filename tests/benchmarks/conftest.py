"""Fixtures of the benchmark tests: Meta-World envs need mujoco + metaworld and a headless GL backend."""

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

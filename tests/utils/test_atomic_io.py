"""Atomic writes leave no partial file and give the usual permissions (not mkstemp's owner-only ones)."""

from __future__ import annotations

import os
import stat

import pytest

from AlphaBrain.utils.atomic_io import atomic_dir, atomic_write_text


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_written_file_and_dir_have_the_modes_plain_writes_would(tmp_path, umask_022):
    atomic_write_text(tmp_path / "a.json", "{}")
    with atomic_dir(tmp_path / "ckpt") as d:
        (d / "w.bin").write_bytes(b"x")
    (tmp_path / "plain.txt").write_text("x")
    (tmp_path / "plain_dir").mkdir()
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)  # noqa: E731
    assert mode(tmp_path / "a.json") == mode(tmp_path / "plain.txt") == 0o644
    assert mode(tmp_path / "ckpt") == mode(tmp_path / "plain_dir") == 0o755


def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "ckpt"):
            raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []

#!/usr/bin/env bash
# Install (if needed) and run the whole test suite. Extra arguments go to pytest, e.g. -m "not slow" or -n 0.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
bash scripts/setup_env.sh
export MUJOCO_GL="${MUJOCO_GL:-egl}" PYOPENGL_PLATFORM="${PYOPENGL_PLATFORM:-egl}"
# Lint first (seconds): an unused import or an undefined name fails here with its file and line.
.venv/bin/ruff check AlphaBrain tests bench scripts
# One pytest-xdist worker per core; -n 0 runs everything in one process.
exec .venv/bin/python -m pytest -q -n "${ALPHABRAIN_TEST_WORKERS:-auto}" "$@"

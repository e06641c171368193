#!/usr/bin/env bash
# Install (if needed) and run the whole test suite. Extra arguments go to pytest, e.g. -m "not slow".
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
bash scripts/setup_env.sh
export MUJOCO_GL="${MUJOCO_GL:-egl}" PYOPENGL_PLATFORM="${PYOPENGL_PLATFORM:-egl}"
exec .venv/bin/python -m pytest -q "$@"

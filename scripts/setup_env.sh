#!/usr/bin/env bash
# Install everything AlphaBrain-CL needs into ./.venv (idempotent; fast when nothing changed):
#   - OS packages for headless MuJoCo rendering (EGL / OSMesa), via apt-get when available
#   - torch==2.13.0 first (the CPU build on a CPU machine), then the package and its dependencies
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

# EGL/OSMesa: headless MuJoCo rendering; libgl1 + libglib2.0-0: OpenCV, which robosuite (LIBERO) imports.
OS_PKGS=(libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6 libgl1 libglib2.0-0)
if command -v dpkg >/dev/null 2>&1; then
  missing=()
  for p in "${OS_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [[ ${#missing[@]} -gt 0 ]]; then
    SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
    echo "[setup] installing OS packages for headless rendering: ${missing[*]}"
    if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/tmp/alphabrain_apt.log 2>&1; then
      echo "[setup] warning: could not install ${missing[*]} (see /tmp/alphabrain_apt.log); simulator rendering may fail" >&2
    fi
  fi
fi

PYTHON="${PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
  for cand in python3.11 python3.12 python3.10 python3; do command -v "$cand" >/dev/null 2>&1 && { PYTHON="$cand"; break; }; done
fi
[[ -n "$PYTHON" ]] || { echo "error: no python3 found" >&2; exit 1; }
[[ -x .venv/bin/python ]] || { echo "[setup] creating .venv with $PYTHON"; "$PYTHON" -m venv .venv; }
VPY=.venv/bin/python

stamp_file=.venv/.alphabrain-installed
stamp=$(cat pyproject.toml scripts/setup_env.sh | sha256sum | cut -d' ' -f1)
if [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp" ]] && "$VPY" -c "import AlphaBrain, torch" 2>/dev/null; then
  exit 0
fi
"$VPY" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
LOG=.venv/pip-install.log
pip_install() {  # quiet on success; the log's tail on failure
  "$VPY" -m pip install -q "$@" >>"$LOG" 2>&1 || { echo "error: pip install $* failed; last lines of $LOG:" >&2; tail -n 30 "$LOG" >&2; exit 1; }
}
if ! "$VPY" -c "import torch" 2>/dev/null; then
  echo "[setup] installing torch==2.13.0"
  pip_install "torch==2.13.0"
fi
echo "[setup] installing AlphaBrain-CL and its dependencies into .venv"
pip_install -e ".[dev]"
echo "$stamp" > "$stamp_file"
echo "[setup] done ($("$VPY" -c 'import torch; print("torch", torch.__version__)'))"

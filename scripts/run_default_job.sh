#!/usr/bin/env bash
# The main job on the built-in default, from a fresh clone, on CPU, with no downloads:
#   1. install (scripts/setup_env.sh, skipped when up to date)
#   2. write a small LeRobot-format task stream (cached under playground/datasets/)
#   3. train the small VLA over the stream with a CL algorithm (ER by default)
#   4. evaluate every task checkpoint on every task and print the matrix
# Re-running continues where it stopped (completed task checkpoints are kept).
# Knobs (environment): ALGO=er|none|...  STEPS=<steps per task>  RUN_ID=<name>  TASKS=<number of tasks>
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

ALGO="${ALGO:-er}" STEPS="${STEPS:-300}" TASKS="${TASKS:-3}"
RUN_ID="${RUN_ID:-default_tiny_${ALGO}}"
DATA="playground/datasets/synthetic_push${TASKS}"
PY=.venv/bin/python

echo "[1/4] set-up"
bash scripts/setup_env.sh

echo "[2/4] dataset: $DATA"
"$PY" - "$DATA" "$TASKS" <<'PYEOF'
import sys
from AlphaBrain.dataloader.synthetic import write_synthetic_dataset
root = write_synthetic_dataset(sys.argv[1], num_tasks=int(sys.argv[2]), episodes_per_task=10, episode_length=40,
                               image_size=(64, 64), seed=0)
print(f"      {root} ready")
PYEOF

echo "[3/4] train: tiny VLA, algorithm $ALGO, $TASKS tasks x $STEPS steps"
RESUME=()
compgen -G "results/Checkpoints/$RUN_ID/checkpoints/*_cl_state.json" >/dev/null && RESUME=(--resume)
bash scripts/run_continual_learning_scripts/run_cl_train.sh --model tiny --algo "$ALGO" --dataset "$DATA" \
  --run-id "$RUN_ID" "${RESUME[@]}" -- "continual_learning.steps_per_task=$STEPS" \
  datasets.vla_data.per_device_batch_size=32 continual_learning.replay.buffer_size_per_task=200

echo "[4/4] evaluate every checkpoint on every task"
"$PY" -m AlphaBrain.evaluation.offline_matrix "results/Checkpoints/$RUN_ID" \
  --json "results/Checkpoints/$RUN_ID/offline_matrix.json"

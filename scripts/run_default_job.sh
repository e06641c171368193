#!/usr/bin/env bash
# The main job on the built-in default, from a fresh clone, on CPU, with no downloads:
#   1. install (scripts/setup_env.sh; skipped when up to date)
#   2. generate expert demonstrations of the 5-task Meta-World stream in the simulator (cached)
#   3. train the small VLA over the stream with Experience Replay
#   4. evaluate every task checkpoint on every task in the simulator; print the T x T success
#      matrix, ASR / BWT / forgetting; write the heatmap
# Re-running reuses the demos, continues an interrupted training run and skips evaluated cells.
# Knobs (environment variables):
#   ALGO=er|none|...    CL algorithm (none = sequential fine-tuning)       default er
#   STREAM=metaworld_cl5|metaworld_cl10|synthetic_push3 (a 1-minute pipeline check without MuJoCo)
#          |libero_goal_scripted (all 10 LIBERO-Goal tasks: the CPU study, docs/benchmarks/libero_mini.md)
#          |libero_goal_mini (5 of them)
#   STEPS=<steps per task>   TRIALS=<rollouts per cell>   WORKERS=<rollout processes>
#   RUN_ID=<name>   default default_tiny_<ALGO>_<STREAM>, plus _<STEPS>steps when set and _<EPISODES>ep on LIBERO
#   EPISODES=<demos per task, LIBERO streams only; default 30 for libero_goal_scripted, 15 for libero_goal_mini>
set -euo pipefail
PROG="$0"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
usage_error() { echo "error: $PROG: $* (see $PROG --help)" >&2; exit 2; }
if [[ $# -gt 0 ]]; then
  if [[ "$1" == -h || "$1" == --help ]]; then sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0; fi
  usage_error "takes no arguments; set the knobs as environment variables, e.g. ALGO=none bash $PROG"
fi
cd "$REPO_ROOT"

ALGO="${ALGO:-er}" STREAM="${STREAM:-metaworld_cl5}" WORKERS="${WORKERS:-2}"
# 30 demos per task is what gets the 10-task study's diagonal to 84 % (70 % with 15; docs/benchmarks/libero_mini.md).
case "$STREAM" in libero_goal_scripted) EPISODES="${EPISODES:-30}" ;; libero_goal_mini) EPISODES="${EPISODES:-15}" ;; esac
# A run made with other STEPS or EPISODES gets a run id of its own: re-running with new values must not resume
# (or skip the evaluated cells of) the run trained with the old ones.
RUN_ID="${RUN_ID:-default_tiny_${ALGO}_${STREAM}${STEPS:+_${STEPS}steps}${EPISODES:+_${EPISODES}ep}}"
# The knobs are checked before the (long) set-up and demo generation.
case "$STREAM" in metaworld_cl5|metaworld_cl10|synthetic_push3) TRIALS="${TRIALS:-10}" ;;
  # A LIBERO episode costs ~10x a Meta-World one on a CPU: 5 trials per cell keeps the 10 x 10 matrix near 30 min.
  libero_goal_scripted|libero_goal_mini) TRIALS="${TRIALS:-5}" ;;
  *) usage_error "STREAM must be one of metaworld_cl5, metaworld_cl10, synthetic_push3, libero_goal_scripted, libero_goal_mini, got '$STREAM'" ;; esac
for knob in STEPS TRIALS WORKERS EPISODES; do
  value="${!knob:-1}"
  [[ "$value" =~ ^[0-9]+$ && "$value" -ge 1 ]] || usage_error "$knob must be an integer >= 1, got '$value'"
done
[[ -n "$RUN_ID" && "$RUN_ID" != */* ]] || usage_error "RUN_ID must be a directory name without /, got '$RUN_ID'"
PY=.venv/bin/python
export MUJOCO_GL="${MUJOCO_GL:-egl}" PYOPENGL_PLATFORM="${PYOPENGL_PLATFORM:-egl}"
START=$(date +%s)
stamp() { echo "      ($(( $(date +%s) - START )) s elapsed)"; }

echo "[1/4] set-up"
bash scripts/setup_env.sh
# ALGO is checked against the algorithm registry now that the environment exists.
ALPHABRAIN_PROG="$PROG" "$PY" - "$ALGO" <<'PY' || exit 2
import sys
from AlphaBrain.training.continual_learning.algorithms.registry import get_algorithm_class
from AlphaBrain.utils.cli import command_name, one_line
from AlphaBrain.utils.errors import UserError
algo = sys.argv[1]
try:
    get_algorithm_class({"none": "sequential", "ft": "sequential"}.get(algo, algo))
except UserError as exc:
    sys.exit(f"error: {command_name()}: ALGO={algo}: {one_line(exc)} (none = sequential fine-tuning)")
PY

echo "[2/4] demonstrations: $STREAM"
if [[ "$STREAM" == synthetic_push3 ]]; then
  DATASET="playground/datasets/synthetic_push3" STEPS="${STEPS:-300}" BATCH=32
  "$PY" -c "from AlphaBrain.dataloader.synthetic import write_synthetic_dataset as w; \
w('$DATASET', num_tasks=3, episodes_per_task=10, episode_length=40, image_size=(64, 64), seed=0)"
elif [[ "$STREAM" == libero_* ]]; then
  # 64 px: what the tiny model reads. Rendering and training then skip a resize, and evaluation renders at the
  # dataset's size. The stream's own render mode (lowpoly for libero_goal_scripted) is used for both.
  # The job's demos get a folder of their own (per demo count), so they never collide with a dataset of the same
  # stream generated with other settings; training finds the stream there through ALPHABRAIN_DATA_DIR.
  export ALPHABRAIN_DATA_DIR="${ALPHABRAIN_DATA_DIR:-$REPO_ROOT/playground/datasets}/default_job_64px_${EPISODES}ep"
  DATASET="$STREAM" STEPS="${STEPS:-1000}" BATCH=64
  "$PY" -m AlphaBrain.benchmarks.libero.generate --stream "$STREAM" --episodes-per-task "$EPISODES" \
    --image-size 64 --workers "$WORKERS"
else
  # 600 steps per task: on metaworld_cl5 every task is learned (ER 98 % ASR, sequential BWT -100 pp, as with 1000)
  # and the whole job fits in about 5 minutes on 2 CPU cores (docs/quickstart/continual_learning.md).
  DATASET="$STREAM" STEPS="${STEPS:-600}" BATCH=64
  "$PY" -m AlphaBrain.benchmarks.metaworld.generate --stream "$STREAM"
fi
stamp

echo "[3/4] train: tiny VLA, algorithm $ALGO, $STEPS steps per task"
RESUME=()
compgen -G "results/Checkpoints/$RUN_ID/checkpoints/*_cl_state.json" >/dev/null && RESUME=(--resume)
bash scripts/run_continual_learning_scripts/run_cl_train.sh --model tiny --algo "$ALGO" --dataset "$DATASET" \
  --run-id "$RUN_ID" "${RESUME[@]}" -- "continual_learning.steps_per_task=$STEPS" \
  "datasets.vla_data.per_device_batch_size=$BATCH" continual_learning.replay.buffer_size_per_task=200 \
  continual_learning.replay.replay_batch_ratio=0.4
stamp

echo "[4/4] evaluate every checkpoint on every task ($TRIALS trials per cell, $WORKERS workers)"
bash scripts/run_continual_learning_scripts/run_cl_eval.sh --run-id "$RUN_ID" --suite "$STREAM" \
  --trials "$TRIALS" --workers "$WORKERS"
stamp

#!/usr/bin/env bash
# Evaluate a continual-learning run in simulation: every per-task checkpoint (or the last one) on
# every task of a suite; writes results/eval_cl/<run_id>/{matrix.json,metrics.json,matrix.png}.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

usage() {
  cat <<'USAGE'
Usage: run_cl_eval.sh --run-id ID [--model NAME] [--suite NAME] [--trials N] [--workers N] [--gpus LIST]
                      [--port-base N] [--output-base PATH] [--last-only] [--server] [--cache-merged]
                      [--max-steps N] [--replan-every N] [--envs-per-worker M] [--curve] [--shard K/N | --merge-only]
                      [--allow-foreign-statistics]

  --run-id ID         Required. Run directory under results/Checkpoints/.
  --model NAME        Model the run used (tiny | qwengr00t | ...); checked against the run's config.yaml.
  --suite NAME        Evaluation suite: libero_goal | libero_spatial | libero_object | libero_10 (libero_long),
                      libero_goal_mini, metaworld_cl5 | metaworld_cl10, synthetic_push3.
                      Default: the run's own task stream.
  --trials N          Rollouts per task and checkpoint (LIBERO: init states 0..N-1). Default: 10;
                      production LIBERO numbers use 50
  --workers N         Parallel rollout processes (CPU). Default: 1, or one per GPU with --gpus
  --gpus LIST         GPU ids ("0,1"): one worker + policy server per GPU (implies --server).
                      Ignored without GPUs.
  --port-base N       First policy-server port; worker i gets the i-th free port from here
                      (a taken port is skipped with a note). Default: 5694
  --output-base PATH  Results root. Default: results/eval_cl/<run_id>
  --last-only         Evaluate only the final task checkpoint (ASR only; BWT/F need the full matrix)
  --curve             Also evaluate each task's learning curve, on that task only: the previous task's
                      end checkpoint (none for task 0), the task's mid-task checkpoints
                      (checkpoints/mid_task/, written with trainer.save_interval=N) and its end.
                      Writes curve.json; metrics.json then has LIBERO's FWT and AUC. trainer.keep_last
                      (default 2) deletes old mid-task checkpoints: train with trainer.keep_last=0
                      for a whole curve (the tasks whose points are missing are named)
  --server            Serve the policy over websocket (one server per worker) instead of in-process
  --max-steps N       Cap every episode at N steps: a quick pipeline check (success rates are then not
                      comparable with the suite's)
  --replan-every N    Actions executed from each predicted chunk before the policy is asked again
                      (at most the chunk length). Default: 4. Cells evaluated with another value are
                      not reused; matrix.json records a non-default value
  --envs-per-worker M Environments each worker steps in lockstep, asking the policy for all of them in
                      one batched call (trials of a cell, or cells of one checkpoint). Same results as
                      1; more policy calls/s where the policy forward, not the simulator, is the cost
                      (GPU models, policy servers). Default: 1
  --cache-merged      LoRA runs: write each merged checkpoint once as <prefix>_merged.pt and reuse it
                      (default: adapters are merged in memory, nothing is written)
  --shard K/N         Evaluate only shard K (0..N-1) of N of the (checkpoint, task) cells, for one
                      machine of several (Slurm: --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT).
                      Shards share --output-base; the last one to finish writes the matrix. Default: 0/1
  --merge-only        Evaluate nothing: write the matrix from the shards' cell files (give the same
                      --trials/--max-steps/--suite/--last-only); names the missing cells if any
  --allow-foreign-statistics
                      Evaluate even if the run's dataset_statistics.json was computed on other data than
                      the run trained on (data fingerprints differ; refused by default, as success would
                      collapse). Recompute the file instead: compute_dataset_statistics.py --config
                      results/Checkpoints/<run_id>/config.yaml --out results/Checkpoints/<run_id>/dataset_statistics.json
  -h, --help          This help

Re-running skips the (checkpoint, task) cells already evaluated with the same --trials, --max-steps,
--replan-every and suite. Per checkpoint: <output-base>/<checkpoint>/{eval.log,server.log,results.json} and
cells/<task>.json (one file per cell; a shard logs to eval.shard-K-of-N.log); a mid-task point of
--curve is <output-base>/mid_task/<prefix>/cells/<task>.json, resumed and sharded the same way.

LIBERO runs headless (MUJOCO_GL=egl by default; osmesa also works). To simulate in another Python
environment (your own LIBERO install), set LIBERO_PYTHON=/path/to/its/python (in .env): the workers
run there and the policy is served to them from this environment.
Example: bash scripts/run_continual_learning_scripts/run_cl_eval.sh --run-id default_tiny_er --trials 10 --workers 2
USAGE
}
PROG="$0"  # as typed: usage errors name it, and so does the Python command it starts (ALPHABRAIN_PROG)
die() { echo "error: $*" >&2; exit 2; }
usage_error() { echo "error: $PROG: $* (see $PROG --help)" >&2; exit 2; }

RUN_ID="" MODEL="" SUITE="" TRIALS=10 WORKERS="" GPUS="" PORT_BASE=5694 OUTPUT_BASE="" LAST_ONLY=() SERVER=() CACHE_MERGED=() MAX_STEPS=() REPLAN=() ENVS=() SHARD=() MERGE_ONLY=() ALLOW_FOREIGN=() CURVE=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --run-id) [[ $# -ge 2 ]] || usage_error "--run-id needs a value"; RUN_ID="$2"; shift 2 ;;
    --model) [[ $# -ge 2 ]] || usage_error "--model needs a value"; MODEL="$2"; shift 2 ;;
    --suite) [[ $# -ge 2 ]] || usage_error "--suite needs a value"; SUITE="$2"; shift 2 ;;
    --trials) [[ $# -ge 2 ]] || usage_error "--trials needs a value"; TRIALS="$2"; shift 2 ;;
    --workers) [[ $# -ge 2 ]] || usage_error "--workers needs a value"; WORKERS="$2"; shift 2 ;;
    --gpus) [[ $# -ge 2 ]] || usage_error "--gpus needs a value"; GPUS="$2"; shift 2 ;;
    --port-base) [[ $# -ge 2 ]] || usage_error "--port-base needs a value"; PORT_BASE="$2"; shift 2 ;;
    --output-base) [[ $# -ge 2 ]] || usage_error "--output-base needs a value"; OUTPUT_BASE="$2"; shift 2 ;;
    --last-only) LAST_ONLY=(--last-only); shift ;;
    --server) SERVER=(--server); shift ;;
    --cache-merged) CACHE_MERGED=(--cache-merged); shift ;;
    --max-steps) [[ $# -ge 2 ]] || usage_error "--max-steps needs a value"; MAX_STEPS=(--max-steps "$2"); shift 2 ;;
    --replan-every) [[ $# -ge 2 ]] || usage_error "--replan-every needs a value"; REPLAN=(--replan-every "$2"); shift 2 ;;
    --envs-per-worker) [[ $# -ge 2 ]] || usage_error "--envs-per-worker needs a value"; ENVS=(--envs-per-worker "$2"); shift 2 ;;
    --shard) [[ $# -ge 2 ]] || usage_error "--shard needs a value"; SHARD=(--shard "$2"); shift 2 ;;
    --merge-only) MERGE_ONLY=(--merge-only); shift ;;
    --curve) CURVE=(--curve); shift ;;
    --allow-foreign-statistics) ALLOW_FOREIGN=(--allow-foreign-statistics); shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown flag '$1'" ;;
  esac
done
[[ -n "$RUN_ID" ]] || usage_error "--run-id is required (a directory under results/Checkpoints/)"

cd "$REPO_ROOT"
if [[ -f .env ]]; then set -a; # shellcheck disable=SC1091
  source .env; set +a; fi
PY="${ALPHABRAIN_PYTHON:-}"
[[ -n "$PY" ]] || { [[ -x .venv/bin/python ]] && PY=.venv/bin/python || PY=python3; }
export MUJOCO_GL="${MUJOCO_GL:-egl}" PYOPENGL_PLATFORM="${PYOPENGL_PLATFORM:-egl}"

if [[ -n "$MODEL" ]]; then
  [[ -f "configs/continual_learning/models/$MODEL.yaml" ]] || \
    usage_error "unknown --model '$MODEL'. Valid choices: $(cd configs/continual_learning/models && ls *.yaml | sed 's/\.yaml$//' | paste -sd, - | sed 's/,/, /g')"
fi
if [[ -n "$GPUS" ]]; then
  NGPU=$("$PY" -c 'import torch; print(torch.cuda.device_count())')
  if [[ "$NGPU" -gt 0 ]]; then export CUDA_VISIBLE_DEVICES="$GPUS"; SERVER=(--server)
    WORKERS="${WORKERS:-$(echo "$GPUS" | tr ',' '\n' | grep -c .)}"
  else echo "note: no GPU found; --gpus ignored (use --workers for CPU parallelism)" >&2; fi
fi
ARGS=(--run-id "$RUN_ID" --trials "$TRIALS" --workers "${WORKERS:-1}" --port-base "$PORT_BASE")
[[ -z "$SUITE" ]] || ARGS+=(--suite "$SUITE")
[[ -z "$MODEL" ]] || ARGS+=(--model "$MODEL")
[[ -z "$OUTPUT_BASE" ]] || ARGS+=(--output-base "$OUTPUT_BASE")
ALPHABRAIN_PROG="$PROG" exec "$PY" -m AlphaBrain.evaluation.cl_eval "${ARGS[@]}" "${LAST_ONLY[@]}" "${SERVER[@]}" "${CACHE_MERGED[@]}" "${MAX_STEPS[@]}" \
  "${REPLAN[@]}" "${ENVS[@]}" "${SHARD[@]}" "${MERGE_ONLY[@]}" "${ALLOW_FOREIGN[@]}" "${CURVE[@]}"

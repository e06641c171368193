#!/usr/bin/env bash
# Train one VLA policy over a stream of tasks with a continual-learning algorithm.
# Composes cl_base.yaml + models/<model>.yaml, injects the algorithm / dataset
# overrides, loads .env, and launches AlphaBrain.training.continual_learning.train
# through accelerate. Run with -h for the flags.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CONFIG_DIR="configs/continual_learning"

usage() {
  cat <<'EOF'
Usage: run_cl_train.sh [--model M] [--algo A] [--dataset D] [--run-id ID] [--gpus SPEC]
                       [--port N] [--smoke] [--resume] [--deepspeed [CONFIG]] [--yaml A.yaml B.yaml ...]
                       [--num-machines N --machine-rank R --main-process-ip IP --main-process-port PORT]
                       [-- key=value ...]

Train one VLA backbone sequentially over a task stream (checkpoints per task in
results/Checkpoints/<run_id>/checkpoints/).

  --model MODEL    VLA backbone: one YAML per model in configs/continual_learning/models/
                   qwengr00t | neurovla | llamaoft | paligemma (pretrained weights from
                   $PRETRAINED_MODELS_DIR, LoRA on; -- --lora.enabled=false trains all parameters),
                   <model>_tiny (the same architecture, tiny and randomly initialized: CPU tests),
                   tiny (a 1 M-parameter CNN policy that trains on a laptop CPU). Default: qwengr00t
  --algo ALGO      CL algorithm: er | mir | agem | derpp | ewc | si | lwf | packnet | weight_merge
                   | lora_per_task (needs LoRA) | multitask (joint upper bound) | none (sequential
                   fine-tuning). mir uses the refresh-50 recipe. Default: er
  --dataset DS     Task stream: libero_goal | libero_spatial | libero_object | libero_10 | libero_long,
                   a DATASET_NAMED_MIXTURES name, or a path to a LeRobot dataset (or a folder of them).
                   Default: libero_goal
  --run-id ID      Run directory name under results/Checkpoints/. Default: {model}_{algo}_{dataset}
  --gpus SPEC      GPU count ("2") or id list ("1,2,3"; pins CUDA_VISIBLE_DEVICES) of this machine. On a
                   machine without GPUs, the count is the number of CPU processes. Default: all GPUs, or 1 CPU process
  --port N         accelerate main process port. Default: a free port (one machine only)
  --num-machines N Train on N machines: start this script once on every machine, with the same flags
                   apart from --machine-rank (accelerate's / torchrun's multi-node launch; --gpus is per
                   machine, so the run has N x (processes per machine) ranks). Default: 1
  --machine-rank R This machine's rank, 0..N-1; machine 0 hosts the main process. Default: 0
  --main-process-ip IP
                   Address of machine 0, reachable from every machine (required when N > 1)
  --main-process-port PORT
                   Port on machine 0 that every machine connects to (the same as --port; required when N > 1)
  --smoke          5 steps per task, batch 4: an end-to-end pipeline check
  --resume         Continue after the last complete task checkpoint of --run-id
  --deepspeed [CONFIG]
                   GPU runs: launch with DeepSpeed through accelerate (accelerate launch --use_deepspeed
                   --deepspeed_config_file CONFIG). Default CONFIG: configs/deepspeed/zero2.json (ZeRO-2).
                   Needs `pip install -e '.[deepspeed]'`; a-gem and si read param.grad and cannot use ZeRO-2.
                   See docs/continual_learning/distributed.md
  --yaml PATH ...  Explicit YAML files merged left to right on top of cl_base.yaml (skips --model;
                   --algo/--dataset are applied only when given)
  -- key=value     OmegaConf overrides passed through (e.g. -- --lora.rank=64 continual_learning.steps_per_task=20000)
  -h, --help       This help

Environment: variables from .env in the repo root are loaded (see .env.example).
Example (CPU, no downloads):
  bash scripts/run_continual_learning_scripts/run_cl_train.sh --model tiny --algo er \
      --dataset /path/to/lerobot_dataset --smoke
Several machines (Slurm: scripts/slurm/cl_train_multinode.sbatch), on each of 2 machines:
  bash scripts/run_continual_learning_scripts/run_cl_train.sh --model qwengr00t --algo er --gpus 8 \
      --num-machines 2 --machine-rank <0 or 1> --main-process-ip <machine 0's address> --main-process-port 29500
EOF
}

PROG="$0"  # as typed: usage errors name it, and so do the Python commands it starts (ALPHABRAIN_PROG)
die() { echo "error: $*" >&2; exit 2; }
usage_error() { echo "error: $PROG: $* (see $PROG --help)" >&2; exit 2; }

MODEL="" ALGO="" DATASET="" RUN_ID="" GPUS="" PORT="" SMOKE=0 RESUME=0 DEEPSPEED=""
NUM_MACHINES=1 MACHINE_RANK=0 MAIN_IP=""
YAMLS=() PASSTHROUGH=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --model) [[ $# -ge 2 ]] || usage_error "--model needs a value"; MODEL="$2"; shift 2 ;;
    --algo) [[ $# -ge 2 ]] || usage_error "--algo needs a value"; ALGO="$2"; shift 2 ;;
    --dataset) [[ $# -ge 2 ]] || usage_error "--dataset needs a value"; DATASET="$2"; shift 2 ;;
    --run-id) [[ $# -ge 2 ]] || usage_error "--run-id needs a value"; RUN_ID="$2"; shift 2 ;;
    --gpus) [[ $# -ge 2 ]] || usage_error "--gpus needs a value"; GPUS="$2"; shift 2 ;;
    --port|--main-process-port) [[ $# -ge 2 ]] || usage_error "$1 needs a value"; PORT="$2"; shift 2 ;;
    --num-machines) [[ $# -ge 2 ]] || usage_error "--num-machines needs a value"; NUM_MACHINES="$2"; shift 2 ;;
    --machine-rank) [[ $# -ge 2 ]] || usage_error "--machine-rank needs a value"; MACHINE_RANK="$2"; shift 2 ;;
    --main-process-ip) [[ $# -ge 2 ]] || usage_error "--main-process-ip needs a value"; MAIN_IP="$2"; shift 2 ;;
    --smoke) SMOKE=1; shift ;;
    --resume) RESUME=1; shift ;;
    --deepspeed) DEEPSPEED="configs/deepspeed/zero2.json"  # the value is optional: taken when it is not a flag
                 if [[ $# -ge 2 && "$2" != -* ]]; then DEEPSPEED="$2"; shift 2; else shift; fi ;;
    --yaml) shift; while [[ $# -gt 0 && "$1" != -* ]]; do YAMLS+=("$1"); shift; done
            [[ ${#YAMLS[@]} -gt 0 ]] || usage_error "--yaml needs at least one path" ;;
    --) shift; PASSTHROUGH=("$@"); break ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown flag '$1'" ;;
  esac
done
[[ -z "$PORT" || ( "$PORT" =~ ^[0-9]+$ && "$PORT" -ge 1 && "$PORT" -le 65535 ) ]] || \
  usage_error "--port/--main-process-port must be an integer in 1..65535, got '$PORT'"
[[ "$NUM_MACHINES" =~ ^[0-9]+$ && "$NUM_MACHINES" -ge 1 ]] || \
  usage_error "--num-machines must be an integer >= 1, got '$NUM_MACHINES'"
[[ "$MACHINE_RANK" =~ ^[0-9]+$ && "$MACHINE_RANK" -lt "$NUM_MACHINES" ]] || \
  usage_error "--machine-rank must be an integer in 0..$((NUM_MACHINES - 1)) (--num-machines $NUM_MACHINES), got '$MACHINE_RANK'"
if [[ "$NUM_MACHINES" -gt 1 ]]; then
  # Every machine must name the same rendezvous point: a free port picked here would differ per machine.
  [[ -n "$MAIN_IP" ]] || usage_error "--num-machines $NUM_MACHINES needs --main-process-ip (the address of machine 0, the same on every machine)"
  [[ -n "$PORT" ]] || usage_error "--num-machines $NUM_MACHINES needs --main-process-port (a free port on machine 0, the same on every machine)"
fi
[[ -z "$GPUS" || "$GPUS" =~ ^[0-9]+(,[0-9]+)*$ ]] || usage_error "--gpus must be a count (2) or an id list (1,2,3), got '$GPUS'"

cd "$REPO_ROOT"
if [[ -f .env ]]; then set -a; # shellcheck disable=SC1091
  source .env; set +a; fi
PY="${ALPHABRAIN_PYTHON:-}"
[[ -n "$PY" ]] || { [[ -x .venv/bin/python ]] && PY=.venv/bin/python || PY=python3; }

OVERRIDES=()
if [[ ${#YAMLS[@]} -eq 0 ]]; then
  MODEL="${MODEL:-qwengr00t}" ALGO="${ALGO:-er}" DATASET="${DATASET:-libero_goal}"
  if [[ ! -f "$CONFIG_DIR/models/$MODEL.yaml" ]]; then
    valid=$(cd "$CONFIG_DIR/models" && ls *.yaml 2>/dev/null | sed 's/\.yaml$//' | paste -sd, - | sed 's/,/, /g')
    usage_error "unknown --model '$MODEL'. Valid choices: $valid"
  fi
  YAMLS=("$CONFIG_DIR/cl_base.yaml" "$CONFIG_DIR/models/$MODEL.yaml")
else
  [[ -z "$MODEL" ]] || echo "note: --yaml given, so --model $MODEL is ignored" >&2
fi

case "$ALGO" in
  "") ;;
  er) OVERRIDES+=("continual_learning.algorithm.name=null" "continual_learning.replay.enabled=true") ;;
  none|sequential|ft) OVERRIDES+=("continual_learning.algorithm.name=null" "continual_learning.replay.enabled=false") ;;
  mir) OVERRIDES+=("continual_learning.replay.enabled=false" "continual_learning.algorithm.name=mir"
                   "continual_learning.algorithm.mir_refresh_interval=50") ;;
  *) OVERRIDES+=("continual_learning.replay.enabled=false" "continual_learning.algorithm.name=$ALGO") ;;
esac
[[ -z "$DATASET" ]] || OVERRIDES+=("continual_learning.task_sequence=$DATASET")
if [[ $SMOKE -eq 1 ]]; then
  OVERRIDES+=("continual_learning.steps_per_task=5" "datasets.vla_data.per_device_batch_size=4")
fi
[[ $RESUME -eq 0 ]] || OVERRIDES+=("trainer.is_resume=true")
if [[ -z "$RUN_ID" ]]; then
  RUN_ID="${MODEL:-custom}_${ALGO:-cfg}_$(basename "${DATASET:-cfg}")"
  [[ $SMOKE -eq 0 ]] || RUN_ID="${RUN_ID}_smoke"
fi
OVERRIDES+=("run_id=$RUN_ID")

# Processes: GPUs when there are any, otherwise CPU processes (gloo).
NGPU=$("$PY" -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null) || die "cannot import torch with $PY; run the set-up in README.md first"
LAUNCH=()
if [[ "$GPUS" == *,* ]]; then
  export CUDA_VISIBLE_DEVICES="$GPUS"; NPROC=$(echo "$GPUS" | tr ',' '\n' | grep -c .)
elif [[ -n "$GPUS" ]]; then
  [[ "$GPUS" =~ ^[0-9]+$ && "$GPUS" -ge 1 ]] || usage_error "--gpus must be a count (2) or an id list (1,2,3), got '$GPUS'"
  NPROC="$GPUS"
else
  NPROC=$(( NGPU > 0 ? NGPU : 1 ))
fi
if [[ "$NGPU" -eq 0 ]]; then
  [[ -z "$GPUS" ]] || echo "note: no GPU found; running $NPROC CPU process(es)" >&2
elif [[ "$NPROC" -gt 1 || "$NUM_MACHINES" -gt 1 ]]; then
  LAUNCH+=(--multi_gpu)
fi
if [[ -z "$PORT" ]]; then
  PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
# accelerate counts processes over all machines; torchrun (the CPU path) counts them per machine.
TOTAL_PROC=$(( NPROC * NUM_MACHINES ))
MACHINES=(--num_machines "$NUM_MACHINES" --main_process_port "$PORT")
[[ "$NUM_MACHINES" -eq 1 ]] || MACHINES+=(--machine_rank "$MACHINE_RANK" --main_process_ip "$MAIN_IP")

export ALPHABRAIN_PROG="$PROG"
TRAIN=(-m AlphaBrain.training.continual_learning.train --config_yaml "${YAMLS[@]}" "${OVERRIDES[@]}" "${PASSTHROUGH[@]}")
if [[ -n "$DEEPSPEED" ]]; then
  [[ -f "$DEEPSPEED" ]] || die "--deepspeed config '$DEEPSPEED' not found (the shipped one is configs/deepspeed/zero2.json)"
  [[ "$NGPU" -gt 0 ]] || die "--deepspeed needs GPUs (accelerate runs DeepSpeed on CUDA devices only); on CPU drop --deepspeed, or call AlphaBrain.training.trainer_utils.deepspeed_direct (docs/continual_learning/distributed.md)"
  "$PY" -c 'import deepspeed' 2>/dev/null || die "--deepspeed: DeepSpeed is not installed; run: $PY -m pip install -e '.[deepspeed]'"
  "$PY" "${TRAIN[@]}" --dry-run >/dev/null || exit $?
  # accelerate fills the config's "auto" values (micro batch, accumulation, clipping, bf16) from the run.
  # "standard": every machine's launcher starts its own ranks through torchrun (one launcher per
  # machine, as srun starts them), instead of machine 0 reaching the others over pdsh/ssh.
  CMD=("$PY" -m accelerate.commands.launch --use_deepspeed --deepspeed_config_file "$DEEPSPEED"
       --deepspeed_multinode_launcher standard --num_processes "$TOTAL_PROC" "${MACHINES[@]}"
       --dynamo_backend no "${TRAIN[@]}")
  echo "[run_cl_train] ${CMD[*]}"
  exec "${CMD[@]}"
fi
if [[ "$NPROC" -eq 1 && "$NUM_MACHINES" -eq 1 ]]; then
  # One process needs no launcher (accelerate's would wrap a config error in its own traceback).
  echo "[run_cl_train] $PY ${TRAIN[*]}"
  exec "$PY" "${TRAIN[@]}"
fi
# Several processes: check config and data once, in one process, before starting them all.
"$PY" "${TRAIN[@]}" --dry-run >/dev/null || exit $?
if [[ "$NGPU" -eq 0 ]]; then
  # accelerate's launcher runs a single process with --cpu; torchrun starts the ranks and
  # Accelerator(cpu=True) joins them over gloo.
  # Static rendezvous on machine 0's address: --node_rank fixes which global ranks each machine runs.
  CMD=("$PY" -m torch.distributed.run --nproc_per_node "$NPROC" --nnodes "$NUM_MACHINES" --node_rank "$MACHINE_RANK"
       --master_addr "${MAIN_IP:-127.0.0.1}" --master_port "$PORT" "${TRAIN[@]}")
else
  CMD=("$PY" -m accelerate.commands.launch "${LAUNCH[@]}" --num_processes "$TOTAL_PROC" "${MACHINES[@]}"
       --mixed_precision no --dynamo_backend no "${TRAIN[@]}")
fi
echo "[run_cl_train] ${CMD[*]}"
exec "${CMD[@]}"

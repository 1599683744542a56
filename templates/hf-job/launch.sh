#!/usr/bin/env bash
# Start train.py on one or more processes. Everything after `--` goes to train.py (see
# `python train.py --help`: --model, --output-dir, --grad-accum, --precision, --resume ...).
#
#   ./launch.sh                                   one process (GPU if there is one)
#   ./launch.sh --gpus 8 -- --model /models/llama  8 GPUs on this machine (DDP, accelerate launch)
#   ./launch.sh --gpus 8 --fsdp -- ...            the same, with FSDP (full shard, transformer layers wrapped)
#   ./launch.sh --gpus 8 --deepspeed -- ...       the same, with DeepSpeed ZeRO-2 (ds_zero2.json beside this
#                                                 file; `pip install deepspeed`); DS_CONFIG=FILE for another
#   ./launch.sh --gpus 8 --nodes 2 --node-rank 0 --master-addr 10.0.0.1 --master-port 29500 -- ...
#                                                 one of 2 machines (run it on each, with its --node-rank)
#   ./launch.sh --cpu-procs 2 -- --use-cpu        2 CPU processes (gloo), e.g. to check the job before renting GPUs
#
# The global batch is always the experiment's batchSize: each of N processes takes batchSize/N
# (divided again by --grad-accum). LAUNCHER=torchrun uses torchrun instead of accelerate launch
# (not with --fsdp or --deepspeed, which accelerate sets up). PYTHON picks the interpreter (default: python3).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-python3}
gpus=1 nodes=1 node_rank=0 master_addr=127.0.0.1 master_port=29500 fsdp=0 deepspeed=0 cpu_procs=0
while [ $# -gt 0 ]; do
  case "$1" in
    --gpus) gpus=$2; shift 2 ;;
    --nodes) nodes=$2; shift 2 ;;
    --node-rank) node_rank=$2; shift 2 ;;
    --master-addr) master_addr=$2; shift 2 ;;
    --master-port) master_port=$2; shift 2 ;;
    --fsdp) fsdp=1; shift ;;
    --deepspeed) deepspeed=1; shift ;;
    --cpu-procs) cpu_procs=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "launch.sh: unknown option $1 (train.py's options go after --)" >&2; exit 2 ;;
  esac
done

if [ "$fsdp" = 1 ] && [ "$deepspeed" = 1 ]; then
  echo "launch.sh: --fsdp and --deepspeed each shard the training; choose one" >&2; exit 2
fi
if [ "$deepspeed" = 1 ] || [ "$fsdp" = 1 ]; then
  if [ "$cpu_procs" -gt 0 ] || [ "${LAUNCHER:-accelerate}" = torchrun ]; then
    echo "launch.sh: --fsdp / --deepspeed go through accelerate launch on GPUs (not with --cpu-procs or LAUNCHER=torchrun)" >&2; exit 2
  fi
fi
ds_config=${DS_CONFIG:-$here/ds_zero2.json}
if [ "$deepspeed" = 1 ]; then
  [ -f "$ds_config" ] || { echo "launch.sh: no DeepSpeed config at $ds_config (DS_CONFIG names another)" >&2; exit 2; }
  "$py" -c 'import deepspeed' 2>/dev/null || { echo "launch.sh: --deepspeed needs DeepSpeed in $py: $py -m pip install deepspeed" >&2; exit 2; }
fi

if [ "$cpu_procs" -gt 0 ]; then
  # Several CPU processes with gloo, started directly with the environment torch.distributed reads
  # (torchrun 1.13 fails on Python 3.11 in its log redirection). Rank 0 prints; the others log to files.
  pids=()
  for ((r = 0; r < cpu_procs; r++)); do
    env RANK=$r LOCAL_RANK=$r WORLD_SIZE=$cpu_procs LOCAL_WORLD_SIZE=$cpu_procs MASTER_ADDR=127.0.0.1 MASTER_PORT=$master_port \
      OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} \
      "$py" "$here/train.py" "$@" --use-cpu &
    pids+=($!)
  done
  status=0
  for p in "${pids[@]}"; do wait "$p" || status=$?; done
  exit $status
fi

total=$((gpus * nodes))
if [ "${LAUNCHER:-accelerate}" = torchrun ]; then
  exec torchrun --nproc_per_node "$gpus" --nnodes "$nodes" --node_rank "$node_rank" \
    --master_addr "$master_addr" --master_port "$master_port" "$here/train.py" "$@"
fi
args=(--num_processes "$total" --num_machines "$nodes" --machine_rank "$node_rank"
      --main_process_ip "$master_addr" --main_process_port "$master_port")
[ "$total" -gt 1 ] && args+=(--multi_gpu)
if [ "$fsdp" = 1 ]; then
  # use_orig_params: PEFT freezes most of each wrapped layer, which FSDP only allows with it.
  # FULL_STATE_DICT: checkpoints hold the whole adapter (small), which train.py's run folder copies.
  args+=(--use_fsdp --fsdp_sharding_strategy FULL_SHARD --fsdp_auto_wrap_policy TRANSFORMER_BASED_WRAP
         --fsdp_use_orig_params true --fsdp_state_dict_type FULL_STATE_DICT --fsdp_sync_module_states true)
fi
if [ "$deepspeed" = 1 ]; then
  # ZeRO-2 shards optimizer state and gradients; the weights stay whole on every GPU, so train.py saves
  # the adapter as in DDP. The "auto" values in the config are filled from train.py's TrainingArguments
  # (batch per GPU, accumulation, clipping, bf16/fp16), so the global batch stays the experiment's.
  args+=(--use_deepspeed --deepspeed_config_file "$ds_config")
fi
exec "$py" -m accelerate.commands.launch "${args[@]}" "$here/train.py" "$@"

#!/usr/bin/env bash
# Local single-process run of the self-play experiment (CPU by default), then its plot.
#
#   launch/local.sh                          # the default small CPU run (embedded Gemma 3 270M)
#   launch/local.sh --steps=10 --batch_size=4 --model=smollm2-135m
#   RUN_DIR=runs/exp1 launch/local.sh --task_types=induction
#   FAKE_DEVICES=8 launch/local.sh --mesh=1,4,2   # exercise a sharded mesh on one CPU
#   PLATFORM=gpu launch/local.sh --dtype=bfloat16  # one local GPU
#
# Variables (all optional):
#   RUN_DIR       run directory: metrics.jsonl, TensorBoard events, plot.png and
#                 checkpoints/ go here (default runs/azr-local). Rerunning with the same
#                 RUN_DIR resumes from its last complete checkpoint (--resume=true).
#   PLATFORM      JAX platform: cpu (default), gpu or tpu.
#   FAKE_DEVICES  CPU only: split the host into N XLA devices to test --mesh layouts.
#   PYTHON        interpreter (default python3).
# Any further arguments are passed to experiments/azr.py unchanged (they override ours).
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="${RUN_DIR:-runs/azr-local}"
PLATFORM="${PLATFORM:-cpu}"
PYTHON="${PYTHON:-python3}"

# No cd: RUN_DIR and any path flags stay relative to where you run this (azr resolves
# them); the repository is found through PYTHONPATH.
export PYTHONPATH="$REPO_DIR${PYTHONPATH:+:$PYTHONPATH}"
export JAX_PLATFORMS="$PLATFORM"
if [[ -n "${FAKE_DEVICES:-}" ]]; then
  if [[ "$PLATFORM" != cpu ]]; then
    echo "FAKE_DEVICES only applies to PLATFORM=cpu" >&2
    exit 2
  fi
  export XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=${FAKE_DEVICES}"
fi
# A single process: never join a distributed runtime, whatever the shell inherited.
unset AZR_DISTRIBUTED JAX_COORDINATOR_ADDRESS JAX_NUM_PROCESSES JAX_PROCESS_ID

"$PYTHON" -m experiments.azr \
  --log_dir="$RUN_DIR" \
  --checkpoint_dir="$RUN_DIR/checkpoints" \
  "$@"

# azr.py writes $RUN_DIR/plot.png at the end (--plot); this redraws it (same default name)
# and also writes one PNG per metric group beside it.
"$PYTHON" -m experiments.plot_run --run_dir="$RUN_DIR" --per_group

#!/usr/bin/env bash
# Runs the self-play experiment on every worker of a Cloud TPU VM slice (multi-host).
#
# The same command starts on all workers (`--worker=all`); each becomes one JAX process.
# `AZR_DISTRIBUTED=1` makes experiments/azr.py call `jax.distributed.initialize()`, which on a
# TPU VM finds the coordinator, process count and process id itself. `jax.devices()` then
# lists every chip of the slice, so --mesh must multiply to the slice's chip count
# (e.g. v5e-16: --mesh=1,16,1 or --mesh=2,4,2).
#
#   TPU_NAME=my-v5e-16 ZONE=us-west4-a CKPT_DIR=gs://my-bucket/azr/run1 \
#     launch/tpu_pod.sh --model=qwen2.5-1.5b --mesh=1,16,1 --batch_size=64 --steps=500
#
# Required variables:
#   TPU_NAME    the TPU VM (slice) name.
#   ZONE        its zone.
#   CKPT_DIR    checkpoint directory every worker can reach, normally gs://bucket/path.
#               Orbax writes it collectively: each host writes its own shards, process 0
#               the JSON items and the commit. A worker-local path would split one
#               checkpoint across machines and cannot be restored.
# Optional variables:
#   PROJECT     GCP project (default: gcloud's configured one).
#   LOG_DIR     the run directory (metrics.jsonl, TensorBoard events, samples, plot);
#               only process 0 writes it. A local or mounted path (default
#               $REPO_DIR/runs/<TPU_NAME>, on worker 0's disk): experiments/azr.py
#               refuses gs:// here, since its logs are appended to line by line.
#   REPO_DIR    repository path on the workers (default: $HOME/absolute-zero, expanded
#               on the worker).
#   SYNC=1      first copy this checkout to REPO_DIR on every worker (gcloud scp) and
#               `pip install -e '.[gcs]'` there with jax[tpu] (gcsfs: gs:// CKPT_DIR).
#   PYTHON      interpreter on the workers (default python3).
# Further arguments go to experiments/azr.py on every worker (quoted safely).
#
# Stopping: Ctrl-C stops the ssh sessions; to be sure nothing is left running use
#   gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --worker=all \
#     --command='pkill -u "$USER" -f experiments.azr'
# A rerun with the same CKPT_DIR resumes from its last complete checkpoint.
set -euo pipefail

: "${TPU_NAME:?set TPU_NAME to the TPU VM name}"
: "${ZONE:?set ZONE to the TPU zone}"
: "${CKPT_DIR:?set CKPT_DIR to a directory all workers share (gs://bucket/path)}"
REPO_DIR="${REPO_DIR:-\$HOME/absolute-zero}"
LOG_DIR="${LOG_DIR:-$REPO_DIR/runs/$TPU_NAME}"
PYTHON="${PYTHON:-python3}"
GCLOUD_ARGS=(--zone="$ZONE")
[[ -n "${PROJECT:-}" ]] && GCLOUD_ARGS+=(--project="$PROJECT")

on_all_workers() {  # run one shell command on every worker of the slice, in parallel
  gcloud compute tpus tpu-vm ssh "$TPU_NAME" "${GCLOUD_ARGS[@]}" --worker=all --command="$1"
}

if [[ "${SYNC:-0}" == 1 ]]; then
  LOCAL_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  on_all_workers "mkdir -p $REPO_DIR"
  # Source only: no runs/, caches or virtual environments.
  tar -C "$LOCAL_REPO" --exclude=./runs --exclude=.git --exclude='*.pyc' -czf /tmp/azr-src.tgz .
  gcloud compute tpus tpu-vm scp /tmp/azr-src.tgz "$TPU_NAME":/tmp/azr-src.tgz \
    "${GCLOUD_ARGS[@]}" --worker=all
  on_all_workers "tar -C $REPO_DIR -xzf /tmp/azr-src.tgz && cd $REPO_DIR && \
    $PYTHON -m pip install -q -e '.[gcs]' 'jax[tpu]>=0.10.2,<0.11'"
fi

# "$@" quoted for the remote shell.
ARGS="$(printf '%q ' "$@")"
on_all_workers "cd $REPO_DIR && \
  AZR_DISTRIBUTED=1 JAX_PLATFORMS=tpu \
  $PYTHON -m experiments.azr \
    --checkpoint_dir=$CKPT_DIR --log_dir=$LOG_DIR $ARGS"

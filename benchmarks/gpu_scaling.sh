#!/usr/bin/env bash
# The whole several-GPU measurement in one call, on a machine with 2 or more GPUs, from the repository root:
#
#   bash benchmarks/gpu_scaling.sh            # 1,2 GPUs on a 2-GPU machine; 1,2,4 on one with 4 or more
#   SCALING_GPUS=1,2 bash benchmarks/gpu_scaling.sh
#
# = gpu_run.sh's env, assets (the Mistral-7B-shaped model, built once) and scaling stages:
# `carexpert train --gpus N` for each N on the same examples per optimizer step, then the table of
# tokens/s, scaling efficiency against 1 GPU (targets 0.90 at 2, 0.85 at 4), the loss check against
# the 1-GPU run (compare.py's tolerance) and each GPU's peak memory. Writes $OUT/gpu_scaling.json
# (+ one gpu_scaling_<N>gpu.json per run); exit status 0 only when every target and check passed.
# NVLink multicast stays off (NCCL_NVLS_ENABLE=0): on a shared host it can put the GPUs out of service.
set -u
cd "$(dirname "$0")/.."
export NCCL_NVLS_ENABLE=0
if [ -z "${SCALING_GPUS:-}" ]; then
  count=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ')
  if [ "$count" -ge 4 ]; then SCALING_GPUS=1,2,4
  elif [ "$count" -ge 2 ]; then SCALING_GPUS=1,2
  else echo "gpu_scaling.sh: $count GPU(s) visible; the measurement needs 2 or more" >&2; exit 2
  fi
fi
export SCALING_GPUS
exec bash benchmarks/gpu_run.sh --deadline "${DEADLINE:-590}" env assets scaling

#!/usr/bin/env bash
# One GPU session's measurements for issues 13-15, from the repository root on the GPU machine:
#
#   bash benchmarks/gpu_session.sh [--deadline SECONDS] PART...
#
# PARTs, in the order a session runs them (each call names the parts that fit its 10 minutes):
#   install   wheels staged in /tmp/keep/wheels (../shared/tools/gpu-wheels.sh) -> /tmp/site; the
#             embedded model converted once (~1 min)
#   sweep     benchmarks/rag_sweep.py: recipe variants of the embedded model trained and evaluated in
#             parallel (tuned sides only; the winner is written to $KEEP/best.json)
#   default   the winning recipe alone, as a user runs it: 'carexpert train' then 'carexpert eval' with all
#             four sides, both timed (issue 13's targets and its 5-minute budget)
#   evalsides benchmarks/eval_sides.py: the four evaluation sides timed (base first, tuned merged), then
#             tuned + retrieval again unmerged (time, identical answers, score); uses the default part's
#             adapter when it ran in this session, else a fresh random one
#   decode    benchmarks/decode_cliffs.py: batch-1 decoding of the embedded model (issue 14)
#   mistral   benchmarks/gpu_train_speed.sh mistral: seed stack vs carexpert on the Mistral-7B shape (issue 14)
#   embedded  benchmarks/gpu_train_speed.sh embedded: the default run's tokens/s and seconds after load
#   serve     benchmarks/serve_load.py: one client, 8 concurrent clients, a burst of 200 against a queue of 32
# Results: $OUT/<part>.tgz (every file a part wrote) and $OUT/log.txt; $KEEP (/tmp/keep) survives between
# calls while the machine stays warm.
set -u
cd "$(dirname "$0")/.."
DEADLINE=580
if [ "${1:-}" = "--deadline" ]; then DEADLINE=$2; shift 2; fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false NCCL_NVLS_ENABLE=0
export OUT=${OUT:-benchmarks/results/raw} KEEP=${KEEP:-/tmp/keep}
export PYTHONPATH=/tmp/site:$PWD
mkdir -p "$OUT" "$KEEP"
exec > >(tee -a "$OUT/log.txt") 2>&1
echo "=== gpu_session: $* (deadline ${DEADLINE}s) $(date -u +%FT%TZ)"
left() { echo $(( DEADLINE - SECONDS )); }
stage() {  # stage NAME CAP command...
  local name=$1 cap=$2; shift 2
  local budget; budget=$(left); [ "$budget" -gt "$cap" ] && budget=$cap
  if [ "$budget" -lt 30 ]; then echo "=== $name skipped: deadline"; return; fi
  echo "=== $name (limit ${budget}s) $(date +%T)"
  local t0=$SECONDS
  timeout "$budget" "$@"; local rc=$?
  echo "=== $name done rc=$rc in $(( SECONDS - t0 ))s"
}
pack() {  # pack PART FOLDER: every small file the part wrote, in one archive
  tar -czf "$OUT/$1.tgz" --exclude='*.safetensors' --exclude='*.bin' --exclude='tokenizer*' --exclude='*.pt' --exclude='*.sqlite' \
    --exclude='checkpoint-*' --exclude='tensorboard' -C "$(dirname "$2")" "$(basename "$2")" 2>/dev/null
  ls -la "$OUT/$1.tgz"
}

for part in "$@"; do
  case $part in
    install)
      if [ ! -f /tmp/site/.installed ]; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
          "$KEEP"/wheels/*.whl && touch /tmp/site/.installed
      fi
      nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
      python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"
      stage convert 200 python3 -c "from carexpert.modeling import ensure_embedded_model; print(ensure_embedded_model())"
      stage check 60 python3 -m carexpert.cli.main check ;;
    sweep)
      stage sweep 560 python3 benchmarks/rag_sweep.py --out "$KEEP/sweep" --parallel "${SWEEP_PARALLEL:-6}" \
        --variants "${SWEEP_VARIANTS:-seed,all_linear,bf16,bf16_lr5e4,bf16_lr1e3,nf4_lr1e3}" \
        --eval-args "--sides tuned_rag,tuned_closed"
      cp "$KEEP/sweep/best.json" "$KEEP/best.json" 2>/dev/null
      pack sweep "$KEEP/sweep" ;;
    default)
      [ -f "$KEEP/best.json" ] || echo '{}' > "$KEEP/best.json"
      stage default 560 python3 benchmarks/rag_sweep.py --out "$KEEP/default" --parallel 1 \
        --overrides-file "$KEEP/best.json" --variants chosen
      pack default "$KEEP/default" ;;
    evalsides)
      mkdir -p "$KEEP/evalsides"
      adapter="$KEEP/default/chosen/runs/chosen/adapter"
      [ -d "$adapter" ] || { echo "no trained adapter at $adapter: timing a fresh random one"; adapter=""; }
      stage evalsides 560 python3 benchmarks/eval_sides.py --model embedded --skip-unsorted \
        ${adapter:+--adapter "$adapter"} --out "$KEEP/evalsides/eval_sides_gpu.json"
      pack evalsides "$KEEP/evalsides" ;;
    decode)
      mkdir -p "$KEEP/decode"
      stage decode 300 python3 benchmarks/decode_cliffs.py --out "$KEEP/decode" ${DECODE_ARGS:-}
      pack decode "$KEEP/decode" ;;
    mistral|embedded)
      mkdir -p "$KEEP/$part"
      OUT="$KEEP/$part" stage "$part" 560 bash benchmarks/gpu_train_speed.sh --deadline "$(( $(left) - 10 ))" "$part"
      pack "$part" "$KEEP/$part" ;;
    serve)
      mkdir -p "$KEEP/serve"
      stage serve 400 python3 benchmarks/serve_load.py --clients 8 --burst 200 --queue 32 \
        --out "$KEEP/serve/serve_load.json" ${SERVE_ARGS:-}
      pack serve "$KEEP/serve" ;;
    *) echo "unknown part $part"; exit 2 ;;
  esac
done
echo "=== all done in ${SECONDS}s"

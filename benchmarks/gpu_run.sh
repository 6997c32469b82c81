#!/usr/bin/env bash
# Runs benchmark stages on an offline GPU machine, from the repository root.
#
#   bash benchmarks/gpu_run.sh [--deadline SECONDS] STAGE...
#
# Stages: env, assets, levers, seed, carexpert, carexpert_mb4, compare, decode, probe, serve, scaling, drill. Results go to $OUT
# (default benchmarks/results/raw). The random checkpoint, tokenizer and dataset are built
# once under $BENCH (/dev/shm/bench when shared memory has room, else /tmp/bench) and reused
# by later stages and later calls on the same machine. Missing Python packages come from
# .whl/ (see docs/benchmarks.md). Every stage gets what is left of the deadline.
set -u
cd "$(dirname "$0")/.."
DEADLINE=590
if [ "${1:-}" = "--deadline" ]; then DEADLINE=$2; shift 2; fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-benchmarks/results/raw}
mkdir -p "$OUT"
if [ -z "${BENCH:-}" ]; then
  shm_free_gb=$(df -BG --output=avail /dev/shm 2>/dev/null | tail -1 | tr -dc 0-9)
  if [ "${shm_free_gb:-0}" -gt 24 ]; then BENCH=/dev/shm/bench; else BENCH=/tmp/bench; fi
fi
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1 && [ ! -f /tmp/site/.installed ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && touch /tmp/site/.installed
fi
[ -d /tmp/site ] && export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH} || export PYTHONPATH=$PWD
left() { echo $(( DEADLINE - SECONDS )); }
stage() {  # stage NAME CAP command...
  local name=$1 cap=$2; shift 2
  local budget; budget=$(left); [ "$budget" -gt "$cap" ] && budget=$cap
  if [ "$budget" -lt 20 ]; then echo "=== $name skipped: deadline"; return; fi
  echo "=== $name (limit ${budget}s) $(date +%T)"
  local t0=$SECONDS
  timeout "$budget" "$@"; local rc=$?
  echo "=== $name done rc=$rc in $(( SECONDS - t0 ))s"
}
MODEL=$BENCH/model DATA=$BENCH/data.jsonl
for name in "$@"; do
  case $name in
    env) stage env 90 bash -c "nvidia-smi; df -h /dev/shm /tmp; python3 benchmarks/gpu_env_check.py $OUT/env.json" ;;
    assets) if [ -f "$BENCH/assets.json" ]; then echo "=== assets: reusing $BENCH"; else
              stage assets 240 python3 benchmarks/bench_assets.py --out "$BENCH"; fi
            cp "$BENCH/assets.json" "$OUT/" 2>/dev/null ;;
    levers) stage levers 330 env ${LEVERS_ENV:-} python3 benchmarks/levers.py --model "$MODEL" --data "$DATA" --out "$OUT/levers.json" \
              ${LEVERS_ARGS:-} ;;
    seed) stage seed 240 python3 benchmarks/seed_baseline.py --model "$MODEL" --data "$DATA" \
            --steps "${SEED_STEPS:-30}" --warmup "${SEED_WARMUP:-5}" --out "$OUT/seed_baseline.json" ;;
    carexpert) stage carexpert 240 python3 benchmarks/carexpert_train.py --model "$MODEL" --data "$DATA" \
                 --steps "${SEED_STEPS:-30}" --warmup "${SEED_WARMUP:-5}" --out "$OUT/carexpert_train.json" ;;
    carexpert_mb4) stage carexpert_mb4 150 python3 benchmarks/carexpert_train.py --model "$MODEL" --data "$DATA" \
                     --steps "${MB4_STEPS:-10}" --warmup "${MB4_WARMUP:-3}" --run-id bench-mb4 --set train.auto_micro_batch=false \
                     --set train.gradient_checkpointing=on --out "$OUT/carexpert_train_mb4.json" ;;
    compare) stage compare 30 python3 benchmarks/compare.py "$OUT" ;;
    scaling) stage scaling 500 python3 benchmarks/gpu_scaling.py --model "$MODEL" --data "$DATA" \
               --gpus "${SCALING_GPUS:-1,2,4}" --steps "${SCALING_STEPS:-40}" --warmup "${SCALING_WARMUP:-8}" \
               --reuse-finished --out "$OUT/gpu_scaling.json" ;;
    drill) for mode in raise hang; do  # one rank fails on purpose over NCCL: the run must end failed, naming it
             stage "drill-$mode" 200 env CAREXPERT_FAULT="rank=1,step=3,mode=$mode" python3 benchmarks/carexpert_train.py \
               --model "$MODEL" --data "$DATA" --steps 10 --warmup 2 --gpus 2 --set train.dist_timeout_s=60 \
               --run-id "drill-$mode" --work "/tmp/carexpert-drill-$mode" --out "$OUT/drill_$mode.json"
             python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print('drill', sys.argv[2], '->', r['final_state'], '|', r['final_error'])" \
               "$OUT/drill_$mode.json" "$mode"
           done ;;
    decode) stage decode 300 python3 benchmarks/decode.py --model "$MODEL" --out "$OUT/decode.json" ;;
    probe) stage probe 240 python3 benchmarks/decode_probe.py --model "$MODEL" --out "$OUT/decode_probe.json" \
             ${PROBE_PATHS:+--paths $PROBE_PATHS} ;;
    serve) stage serve 480 python3 benchmarks/serve_load.py ${SERVE_ARGS:-} --out "$OUT/serve_load.json" ;;
    *) echo "unknown stage $name"; exit 2 ;;
  esac
done
echo "=== all done in ${SECONDS}s"

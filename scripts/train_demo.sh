#!/usr/bin/env bash
# The whole demo-model recipe in one command (docs/training.md, "Demo model"): synthrooms data, the two small
# teachers, Stage 1 (`vidllm distill`), Stage 2 (`vidllm train`), then the result is copied into the package
# (vidllm_core/assets/demo/). Every stage resumes where it stopped when the script is run again.
#   bash scripts/train_demo.sh            # about 70 min on 2 CPU cores (see docs/training.md for timings)
# Env: BIN (default .venv/bin), DATA (default data/synthrooms), RUNS (default runs), SHIP=0 to skip the copy.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
DATA=${DATA:-data/synthrooms}
RUNS=${RUNS:-runs}
SEM_STEPS=${SEM_STEPS:-600}
mkdir -p "$RUNS"
export HF_HUB_OFFLINE=1

log() { echo "[$(date +%H:%M:%S)] $*"; }

# train (or resume) one recipe into $RUNS/NAME
run_stage() {  # CMD CONFIG NAME
    local cmd=$1 cfg=$2 name=$3
    if [ -f "$RUNS/$name/latest" ]; then
        "$BIN/vidllm" "$cmd" --config "$cfg" --resume "$RUNS/$name"
    else
        "$BIN/vidllm" "$cmd" --config "$cfg" --out "$RUNS/$name"
    fi
}

# 0. data: 360 synthrooms scenes, 288 train / 18 val / 54 test (test scenes are never trained on or selected with)
if [ ! -f "$DATA/synthrooms.json" ]; then
    log "generating synthrooms"
    "$BIN/vidllm" synth "$DATA" --scenes 360 --seed 0 --split-ratios 0.8,0.05,0.15
fi
if [ ! -f "$RUNS/demo_init/tokenizer/tokenizer.json" ]; then
    "$BIN/vidllm" init --preset demo --seed 0 -o "$RUNS/demo_init"   # its tokenizer serves the language branch
fi

# 1. the two teachers, side by side (one core each)
t0=$(date +%s)
log "geometry teacher (reconstruction losses) + semantic teacher (patch category / colour)"
OMP_NUM_THREADS=1 run_stage train configs/train_demo_geometry_teacher.yaml geometry_teacher > "$RUNS/geometry_teacher.log" 2>&1 &
geo=$!
if [ ! -f "$RUNS/semantic_teacher/model.safetensors" ]; then
    OMP_NUM_THREADS=1 "$BIN/python" scripts/train_semantic_teacher.py "$DATA" "$RUNS/semantic_teacher" \
        --steps "$SEM_STEPS" > "$RUNS/semantic_teacher.log" 2>&1
fi
wait "$geo"
t1=$(date +%s)
log "teachers done in $((t1 - t0)) s"

# 2. Stage 1: dual-teacher distillation into the encoder + Cross-Task Adapter
run_stage distill configs/distill_demo.yaml distill_demo
t2=$(date +%s)
log "stage 1 done in $((t2 - t1)) s"

# 3. Stage 2: joint training of every module with reconstruction, metric depth, QA and grounding losses
run_stage train configs/train_demo.yaml train_demo
t3=$(date +%s)
log "stage 2 done in $((t3 - t2)) s (total $((t3 - t0)) s)"

# 4. ship: config.json + model.safetensors + tokenizer/ into the package
if [ "${SHIP:-1}" = 1 ]; then
    dest=vidllm_core/assets/demo
    rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
    cp "$RUNS/train_demo/config.json" "$RUNS/train_demo/model.safetensors" "$dest.tmp/"
    cp -r "$RUNS/train_demo/tokenizer" "$dest.tmp/tokenizer"
    rm -rf "$dest" && mv "$dest.tmp" "$dest"
    log "shipped $(du -sh "$dest" | cut -f1) to $dest"
fi

#!/usr/bin/env bash
# The README's main-job command (`make demo`): reconstruct the shipped example video.
# No trained model ships yet, so this runs a seeded random `tiny` model: it exercises the whole pipeline
# (video -> frames -> network -> metric alignment -> PLY + cameras) but its geometry is not meaningful.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
OUT=${OUT:-out/demo}
mkdir -p "$OUT"
if [ ! -f "$OUT/tiny-model/model.safetensors" ]; then
    "$BIN/vidllm" init --preset tiny --seed 0 -o "$OUT/tiny-model"
fi
"$BIN/vidllm" reconstruct examples/room.mp4 --model "$OUT/tiny-model" \
    -o "$OUT/room.ply" --cameras "$OUT/room_cameras.json" --json
echo "wrote $OUT/room.ply and $OUT/room_cameras.json (random tiny model: a pipeline check, not a real reconstruction)"

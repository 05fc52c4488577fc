#!/usr/bin/env bash
# The README's main-job command (`make demo`): the shipped demo model (vidllm_core/assets/demo, the default
# --model) answers the first counting question of examples/questions.json about examples/room.mp4 and reconstructs
# the same video. The demo model is small and trained on synthetic rooms only (README, "Demo model").
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
OUT=${OUT:-out/demo}
mkdir -p "$OUT"
Q=$("$BIN/python" -c 'import json; q = json.load(open("examples/questions.json"))["questions"]; c = next(x for x in q if x["video"] == "room.mp4" and x["question"].startswith("how many")); print(c["question"] + "\t" + c["answers"][0])')
QUESTION=${Q%%$'\t'*}
TRUTH=${Q##*$'\t'}
echo "Q: $QUESTION"
ANSWER=$("$BIN/vidllm" ask examples/room.mp4 "$QUESTION" --no-cache)
echo "A: $ANSWER   (truth: $TRUTH)"
"$BIN/vidllm" reconstruct examples/room.mp4 -o "$OUT/room.ply" --cameras "$OUT/room_cameras.json" --json
echo "wrote $OUT/room.ply and $OUT/room_cameras.json"

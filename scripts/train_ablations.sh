#!/usr/bin/env bash
# Table-6 ablations of the demo model (docs/training.md, "Ablations"): every variant gets the demo recipes
# (configs/distill_demo.yaml, configs/train_demo.yaml) with its model overrides and the same budget (Stage 1
# S1_STEPS, Stage 2 S2_STEPS, all from the geometry teacher with a freshly seeded adapter: scripts/prepare_ablation.py),
# then the same held-out evaluation (54 synthrooms test scenes of the recipes' data), collected into OUT/table.md.
#   bash scripts/train_ablations.sh                 # needs scripts/train_demo.sh steps 0-1 (data + teachers)
# Env: BIN (.venv/bin), RUNS (runs/ablations), OUT (out/ablations), S1_STEPS (200),
#      S2_STEPS (300), LIMIT_RECON (first N test scenes for the reconstruction F-score, 18), LANES (2: variants
#      trained side by side, one thread each), VARIANTS (space-separated subset), TABLE_ONLY=1.
# Every stage resumes where it stopped when the script is run again.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${BIN:-.venv/bin}
DATA=$ROOT/data/synthrooms  # the demo recipes' data
RUNS=$ROOT/${RUNS:-runs/ablations}
OUT=$ROOT/${OUT:-out/ablations}
TEACHER=$ROOT/runs/geometry_teacher
SEMANTIC=$ROOT/runs/semantic_teacher
TOKENIZER=$ROOT/runs/demo_init/tokenizer
S1_STEPS=${S1_STEPS:-200}
S2_STEPS=${S2_STEPS:-300}
LIMIT_RECON=${LIMIT_RECON:-18}
LANES=${LANES:-2}
export HF_HUB_OFFLINE=1

declare -A OVERRIDES=(
    [cta_bridge16]='{}'
    [no_cta]='{"adapter": {"variant": "none"}}'
    [cta_concat_sa]='{"adapter": {"variant": "concat_sa"}}'
    [cta_cross_attn]='{"adapter": {"variant": "cross_attn"}}'
    [cta_bridge4]='{"adapter": {"num_bridge_tokens": 4}}'
    [cta_bridge8]='{"adapter": {"num_bridge_tokens": 8}}'
    [no_md]='{"metric_depth": null}'
    [md_no_alignment]='{"alignment": {"enabled": false}}'
    [cta_bridge16_seed1]='{}'
)
declare -A SEED=([cta_bridge16_seed1]=1)  # the reference trained again with another seed: the noise level
ORDER=(no_cta cta_concat_sa cta_cross_attn cta_bridge4 cta_bridge8 cta_bridge16 no_md md_no_alignment
       cta_bridge16_seed1)
read -r -a VARIANTS <<< "${VARIANTS:-${ORDER[*]}}"
for t in "$TEACHER" "$SEMANTIC" "$TOKENIZER"; do
    [ -e "$t" ] || { echo "error: $t is missing; run scripts/train_demo.sh first (data + teachers)" >&2; exit 2; }
done
log() { echo "[$(date +%H:%M:%S)] $*"; }

stage() {  # CMD RECIPE DIR
    if [ -f "$3/latest" ]; then "$BIN/vidllm" "$1" --config "$2" --resume "$3"; else "$BIN/vidllm" "$1" --config "$2" --out "$3"; fi
}

ev() {  # VARIANT NAME TASK ARGS...
    local v=$1 name=$2; shift 2
    local dest=$OUT/$v
    [ -f "$dest/$name.json" ] && return 0
    "$BIN/vidllm" eval "$@" -o "$dest/$name" --json > "$dest/$name.json.tmp" 2> "$dest/$name.log" \
        && mv "$dest/$name.json.tmp" "$dest/$name.json" \
        || { log "$v/$name failed: $(tail -1 "$dest/$name.log")"; rm -f "$dest/$name.json.tmp"; }
}

one_variant() {  # VARIANT
    local v=$1 dir=$RUNS/$1
    mkdir -p "$OUT/$v"
    "$BIN/python" scripts/prepare_ablation.py "$dir" "${OVERRIDES[$v]}" --seed "${SEED[$v]:-0}" \
        --stage1-steps "$S1_STEPS" --stage2-steps "$S2_STEPS"
    local t0; t0=$(date +%s)
    stage distill "$dir/distill.json" "$dir/stage1" > "$dir/stage1.log" 2>&1
    stage train "$dir/train.json" "$dir/stage2" > "$dir/stage2.log" 2>&1
    echo $(( $(date +%s) - t0 )) > "$OUT/$v/train.seconds"
    log "$v trained in $(cat "$OUT/$v/train.seconds") s"
    local A=$DATA/annotations LIST=$DATA/splits/synthrooms_test.txt
    local M=(--model "$dir/stage2" --scenes "$DATA/posed_images")
    head -n "$LIMIT_RECON" "$LIST" > "$OUT/$v/recon_scenes.txt"
    ev "$v" qa scanqa -a "$A/ScanQA_v1.0_test.json" "${M[@]}"
    ev "$v" scanrefer scanrefer -a "$A/ScanRefer_filtered_test.json" "${M[@]}" --gt-boxes "$A/gt_boxes.json"
    ev "$v" scan2cap scan2cap -a "$A/ScanRefer_filtered_test.json" "${M[@]}" --gt-boxes "$A/gt_boxes.json" --limit 300
    ev "$v" depth depth -a "$LIST" "${M[@]}"
    ev "$v" pose pose -a "$LIST" "${M[@]}"
    ev "$v" recon recon -a "$OUT/$v/recon_scenes.txt" "${M[@]}"
    log "$v evaluated"
}

if [ "${TABLE_ONLY:-0}" != 1 ]; then
    export OMP_NUM_THREADS=1
    for ((lane = 0; lane < LANES; lane++)); do
        (
            for ((i = lane; i < ${#VARIANTS[@]}; i += LANES)); do one_variant "${VARIANTS[$i]}"; done
        ) &
    done
    wait
fi

"$BIN/python" - "$OUT" "${ORDER[@]}" <<'PY'
import json, sys
from pathlib import Path
out, order = Path(sys.argv[1]), sys.argv[2:]
cols = [("qa", "EM@1", "QA EM@1"), ("scan2cap", "CIDEr", "Scan2Cap CIDEr"), ("scanrefer", "Acc@0.25", "ScanRefer Acc@0.25"),
        ("depth", "AbsRel", "depth AbsRel"), ("depth", "delta1", "depth delta1"), ("pose", "RRA@15", "RRA@15"),
        ("pose", "RTA@15", "RTA@15"), ("recon", "F-score", "recon F@5cm")]
rows, table = {}, ["| variant | " + " | ".join(c[2] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
for v in order:
    res = {}
    for task in {c[0] for c in cols}:
        f = out / v / f"{task}.json"
        res[task] = json.loads(f.read_text()) if f.is_file() else {}
    rows[v] = {f"{t}/{k}": res[t].get(k) for t, k, _ in cols}
    cells = [f"{x:.3f}" if isinstance(x, (int, float)) else "n/a" for x in rows[v].values()]
    table.append(f"| {v} | " + " | ".join(cells) + " |")
(out / "table.json").write_text(json.dumps(rows, indent=1))
(out / "table.md").write_text("\n".join(table) + "\n")
print("\n".join(table))
PY

#!/usr/bin/env bash
# Evaluate a model on every benchmark task of a synthrooms split in one go, next to the trivial baselines, and
# collect one table (OUT/results.md, OUT/results.json). The README's "Demo model" results come from this script.
#   bash examples/batch_eval.sh [MODEL_DIR] [DATA] [OUT]
#   MODEL_DIR  default: the shipped demo model (vidllm_core/assets/demo)
#   DATA       default: data/synthrooms (from `vidllm synth data/synthrooms --scenes 360 --seed 0 --split-ratios 0.8,0.05,0.15`)
#   OUT        default: out/batch_eval
# Env: SPLIT (test), BIN (.venv/bin), LIMIT_CAPTION (first N Scan2Cap items, default 300), LIMIT_RECON (first N
#      scenes for recon, default all; ~12 s a scene), FRAMES (default: the model's), TABLE_ONLY=1 (only rebuild the
#      table from the results already in OUT).
# Every `vidllm eval --model` run resumes where it stopped when the script is run again. On 2 shared CPU cores the
# demo model takes about 20 min in all (README, "Demo model").
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
MODEL=${1:-$("$BIN/python" -c 'from vidllm_core.assets import default_model_dir as d; print(d() or "")')}
DATA=${2:-data/synthrooms}
OUT=${3:-out/batch_eval}
SPLIT=${SPLIT:-test}
LIMIT_CAPTION=${LIMIT_CAPTION:-300}
LIMIT_RECON=${LIMIT_RECON:-100000}
[ -n "$MODEL" ] || { echo "error: no model directory given and no shipped demo model" >&2; exit 2; }
A=$DATA/annotations
SCENES=$DATA/posed_images
LIST=$DATA/splits/synthrooms_$SPLIT.txt
mkdir -p "$OUT"
FR=()
[ -n "${FRAMES:-}" ] && FR=(--frames "$FRAMES")

# GT boxes ({scene: {object_id: box}}, written by `vidllm synth`); random-box proposals = every GT box of a scene
"$BIN/python" - "$A/gt_boxes.json" "$OUT/proposals" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
for scene, objs in json.load(open(sys.argv[1])).items():
    (out / f"{scene}.json").write_text(json.dumps(list(objs.values())))
PY

ev() {  # NAME TASK ARGS... -> OUT/NAME.json (metrics), timing in OUT/NAME.time
    local name=$1; shift
    local t0; t0=$(date +%s)
    echo "== $name" >&2
    "$BIN/vidllm" eval "$@" -o "$OUT/$name" --json > "$OUT/$name.json.tmp" 2> "$OUT/$name.log" \
        && mv "$OUT/$name.json.tmp" "$OUT/$name.json" \
        || { echo "   failed: $(grep -m1 '^error' "$OUT/$name.log" || tail -1 "$OUT/$name.log")" >&2; rm -f "$OUT/$name.json.tmp"; }
    echo $(( $(date +%s) - t0 )) > "$OUT/$name.time"
}
M=(--model "$MODEL" --scenes "$SCENES" "${FR[@]}")
GT=(--gt-boxes "$A/gt_boxes.json")
if [ "${TABLE_ONLY:-0}" != 1 ]; then
# recon is the slowest task (GT down-sampling): run it beside the others (2 cores), on the first LIMIT_RECON scenes
head -n "$LIMIT_RECON" "$LIST" > "$OUT/recon_scenes.txt"
ev recon  recon -a "$OUT/recon_scenes.txt" "${M[@]}" &
recon_pid=$!
# baselines first (seconds)
ev qa_majority     scanqa -a "$A/ScanQA_v1.0_$SPLIT.json" --baseline majority --train-annotations "$A/ScanQA_v1.0_train.json"
ev sqa3d_majority  sqa3d -a "$A/v1_balanced_questions_${SPLIT}_scannetv2.json" --baseline majority \
                   --train-annotations "$A/v1_balanced_questions_train_scannetv2.json"
ev scanrefer_random    scanrefer -a "$A/ScanRefer_filtered_$SPLIT.json" "${GT[@]}" --baseline random --proposals "$OUT/proposals"
ev multi3drefer_random multi3drefer -a "$A/multi3drefer_$SPLIT.json" "${GT[@]}" --baseline random --proposals "$OUT/proposals"
ev scan2cap_majority   scan2cap -a "$A/ScanRefer_filtered_$SPLIT.json" "${GT[@]}" --baseline majority \
                       --train-annotations "$A/ScanRefer_filtered_train.json" --limit "$LIMIT_CAPTION"
# the model
ev depth  depth -a "$LIST" "${M[@]}"
ev depth_noalign depth -a "$LIST" "${M[@]}" --baseline no-alignment
ev pose   pose  -a "$LIST" "${M[@]}"
ev qa     scanqa -a "$A/ScanQA_v1.0_$SPLIT.json" "${M[@]}"
ev sqa3d  sqa3d -a "$A/v1_balanced_questions_${SPLIT}_scannetv2.json" "${M[@]}"
ev scanrefer    scanrefer -a "$A/ScanRefer_filtered_$SPLIT.json" "${M[@]}" "${GT[@]}"
ev multi3drefer multi3drefer -a "$A/multi3drefer_$SPLIT.json" "${M[@]}" "${GT[@]}"
ev scan2cap     scan2cap -a "$A/ScanRefer_filtered_$SPLIT.json" "${M[@]}" "${GT[@]}" --limit "$LIMIT_CAPTION"
wait "$recon_pid"
fi

# one table: QA by question type from the predictions (cleaned EM, the metric of the EM@1 column)
"$BIN/python" - "$OUT" "$A/ScanQA_v1.0_$SPLIT.json" "$A/ScanQA_v1.0_train.json" <<'PY'
import json, sys
from collections import Counter, defaultdict
from pathlib import Path
from vidllm_core.metrics.qa import exact_match
out, test, train = Path(sys.argv[1]), json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
def qtype(a):
    return a["question_type"]  # synthrooms records carry their type (vidllm_core/data/synth/phrasing.py)
def load(name):
    f = out / f"{name}.json"
    return json.loads(f.read_text()) if f.is_file() else None
def g(d, *keys):
    for k in keys:
        if d is not None and k in d and isinstance(d[k], (int, float)):
            return d[k]
    return None
res = {n: load(n) for n in ("qa", "qa_majority", "sqa3d", "sqa3d_majority", "scan2cap", "scan2cap_majority",
                            "scanrefer", "scanrefer_random", "multi3drefer", "multi3drefer_random", "depth",
                            "depth_noalign", "pose", "recon")}
# per-type EM of the model and of the per-type majority answer of the training set
preds = {}
pf = out / "qa" / "predictions.jsonl"
if pf.is_file():
    for line in pf.read_text().splitlines():
        if line.strip():
            r = json.loads(line); preds[r["question_id"]] = r["answer"]
maj_overall = Counter(a["answers"][0] for a in train).most_common(1)[0][0]
by_type_train = defaultdict(Counter)
for a in train:
    by_type_train[qtype(a)][a["answers"][0]] += 1
rows = defaultdict(lambda: [0, 0.0, 0.0])
for a in test:
    t = qtype(a)
    rows[t][0] += 1
    rows[t][1] += exact_match(preds.get(a["question_id"], ""), a["answers"]) if preds else float("nan")
    rows[t][2] += exact_match(by_type_train[t].most_common(1)[0][0] if by_type_train[t] else maj_overall, a["answers"])
by_type = {t: {"n": n, "model": m / n, "type_majority": b / n} for t, (n, m, b) in sorted(rows.items())}
res["qa_by_type"] = by_type
by_phrasing = defaultdict(lambda: [0, 0.0])
for a in test:
    by_phrasing[a["phrasing"]][0] += 1
    by_phrasing[a["phrasing"]][1] += exact_match(preds.get(a["question_id"], ""), a["answers"]) if preds else float("nan")
res["qa_by_phrasing"] = {p: {"n": n, "model": m / n} for p, (n, m) in by_phrasing.items()}
times = {p.stem: int(p.read_text()) for p in out.glob("*.time")}
res["seconds"] = times
(out / "results.json").write_text(json.dumps(res, indent=1))
def f(x, pct=False):
    return "n/a" if x is None else (f"{x:.3f}")
L = ["| task | metric | model | baseline |", "|---|---|---|---|"]
add = lambda t, m, a, b, bn: L.append(f"| {t} | {m} | {f(a)} | {f(b)} {bn if b is not None else ''} |")
add("ScanQA (QA)", "EM@1", g(res["qa"], "EM@1"), g(res["qa_majority"], "EM@1"), "(majority answer)")
for t, r in by_type.items():
    add(f"  {t} ({r['n']} q)", "EM@1", r["model"] if preds else None, r["type_majority"], "(majority of type)")
for p, r in sorted(res["qa_by_phrasing"].items(), reverse=True):
    add(f"  {p} phrasings ({r['n']} q)", "EM@1", r["model"] if preds else None, None, "")
add("SQA3D", "EM@1", g(res["sqa3d"], "EM@1"), g(res["sqa3d_majority"], "EM@1"), "(majority answer)")
add("Scan2Cap", "CIDEr", g(res["scan2cap"], "CIDEr", "C"), g(res["scan2cap_majority"], "CIDEr", "C"), "(majority caption)")
for k in ("Acc@0.25", "Acc@0.5"):
    add("ScanRefer", k, g(res["scanrefer"], k, f"overall/{k}"), g(res["scanrefer_random"], k, f"overall/{k}"), "(random GT box)")
add("Multi3DRefer", "F1@0.5", g(res["multi3drefer"], "F1@0.5", "all/F1@0.5"), g(res["multi3drefer_random"], "F1@0.5", "all/F1@0.5"), "(random GT box)")
add("Multi3DRefer", "F1@0.25", g(res["multi3drefer"], "F1@0.25", "all/F1@0.25"), g(res["multi3drefer_random"], "F1@0.25", "all/F1@0.25"), "(random GT box)")
def m3d_split(d, zero):
    if d is None:
        return None
    keys = ("zt_wo_d", "zt_w_d") if zero else ("st_wo_d", "st_w_d", "mt")
    n = sum(d.get(f"n/{k}", 0) for k in keys)
    return sum(d.get(f"F1@0.5/{k}", 0.0) * d.get(f"n/{k}", 0) for k in keys) / n if n else None
add("  zero-target items", "F1@0.5", m3d_split(res["multi3drefer"], True), m3d_split(res["multi3drefer_random"], True), "(random GT box)")
add("  items with targets", "F1@0.5", m3d_split(res["multi3drefer"], False), m3d_split(res["multi3drefer_random"], False), "(random GT box)")
add("Depth", "AbsRel", g(res["depth"], "AbsRel", "abs_rel"), g(res["depth_noalign"], "AbsRel", "abs_rel"), "(no scale alignment)")
add("Depth", "delta1", g(res["depth"], "delta1", "delta_1", "d1"), g(res["depth_noalign"], "delta1", "delta_1", "d1"), "(no scale alignment)")
for k in ("RRA@15", "RTA@15", "AUC@30"):
    add("Pose", k, g(res["pose"], k), None, "")
add("Reconstruction", "F-score@5cm", g(res["recon"], "F-score", "fscore", "F-score@5cm"), None, "")
(out / "results.md").write_text("\n".join(L) + "\n")
print("\n".join(L))
PY

"""Issue 12 "must show": a short Stage-2 run on synthrooms (tiny preset) lifts held-out grounding Acc@0.25 above the
random-GT-box baseline, and the trained proposal scorer picks the right proposal above chance.

Steps (every stage through the `vidllm` CLI, as a user would run them):
  1. `vidllm synth` N scenes (train / test split), `vidllm init --preset tiny`;
  2. `vidllm train` Stage 2 on the train scenes: reconstruction + metric depth + grounding (ScanRefer) losses with
     synthetic proposals (`data.proposals: synthetic`: GT boxes jittered + distractors, synthrooms only);
  3. held-out proposals for the test scenes (GT boxes jittered + distractors, seeded, written as
     `vidllm prepare proposals` writes them);
  4. `vidllm eval scanrefer --model RUN` on the test scenes, once per mode (regression, --proposals);
  5. baselines computed exactly: random GT box of the scene (expected Acc@k over a uniform choice) and a random
     proposal (chance = mean of 1 / #proposals).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/grounding_stage2.py --out runs/grounding_stage2 [--steps 300]

Prints one JSON object (also written to OUT/result.json).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
VIDLLM = str(Path(sys.executable).with_name("vidllm"))


def sh(*args: str) -> None:
    res = subprocess.run([VIDLLM, *args], capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"`vidllm {' '.join(args[:2])}` failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")


def test_proposals(data: Path, out: Path, scenes: list[str], seed: int) -> dict[str, np.ndarray]:
    """Held-out proposals of the test scenes: every GT box jittered + 8 random boxes (the training recipe's
    generator, another seed), written as `<scene>.json`."""
    from vidllm_core.data.benchmarks import load_gt_boxes_file
    from vidllm_core.io import write_json_atomic
    from vidllm_core.training.proposals import synthetic_proposals

    gt = load_gt_boxes_file(data / "annotations" / "gt_boxes.json")
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    props = {}
    for s in scenes:
        props[s] = synthetic_proposals(np.asarray(list(gt[s].values())), rng)
        write_json_atomic(out / f"{s}.json", {"scene_id": s, "boxes": props[s].tolist(), "scores": None,
                                              "source": "synthetic (GT jitter + distractors)"})
    return props


def baselines_and_picks(data: Path, pred_dir: Path, props: dict[str, np.ndarray]) -> dict:
    """Random-GT-box expectation (Acc@0.25 / 0.5), proposal chance, and how often the chosen proposal is the one of
    highest IoU with the GT box."""
    from vidllm_core.data.benchmarks import load_gt_boxes_file
    from vidllm_core.metrics.grounding import box3d_iou_matrix

    gt = load_gt_boxes_file(data / "annotations" / "gt_boxes.json")
    recs = [json.loads(line) for line in (pred_dir / "predictions.jsonl").read_text().splitlines() if line.strip()]
    rand = {0.25: [], 0.5: []}
    picks, chance = [], []
    for r in recs:
        scene, oid = r["id"].split("|")[0], int(r["id"].split("|")[1])
        target = gt[scene][oid]
        iou = box3d_iou_matrix(np.asarray(list(gt[scene].values())), target[None])[:, 0]
        for k in rand:
            rand[k].append(float(np.mean(iou >= k)))
        p = props[scene]
        best = int(np.argmax(box3d_iou_matrix(p, target[None])[:, 0]))
        chosen = int(np.argmin(np.abs(p - np.asarray(r["boxes"][0])).max(1))) if r["boxes"] else -1
        picks.append(chosen == best)
        chance.append(1.0 / len(p))
    return {"random_gt_box": {"Acc@0.25": float(np.mean(rand[0.25])), "Acc@0.5": float(np.mean(rand[0.5]))},
            "proposal_pick_accuracy": float(np.mean(picks)), "proposal_chance": float(np.mean(chance)),
            "n": len(recs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "grounding_stage2")
    ap.add_argument("--scenes", type=int, default=16)
    ap.add_argument("--test-ratio", type=float, default=0.25)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    out = a.out.resolve()
    data, init, run = out / "synthrooms", out / "init", out / "stage2"
    t0 = time.time()
    if not (data / "synthrooms.json").is_file():
        sh("synth", str(data), "--scenes", str(a.scenes), "--seed", str(a.seed), "--frames", "12", "--size",
           "84x64", "--no-video", "--split-ratios", f"{1 - a.test_ratio},0,{a.test_ratio}")
    if not (init / "model.safetensors").is_file():
        sh("init", "--preset", "tiny", "--seed", str(a.seed), "-o", str(init))
    ann = data / "annotations"
    recipe = {
        "stage": "train", "init": str(init), "model": {"preset": "tiny"},
        "data": {"scenes": str(data / "posed_images"), "scene_list": str(data / "splits" / "synthrooms_train.txt"),
                 "frames": 4, "image_size": 56, "max_language_samples": 4, "proposals": "synthetic",
                 "annotations": {"scanrefer": str(ann / "ScanRefer_filtered_train.json"),
                                 "gt_boxes": str(ann / "gt_boxes.json")}},
        "optim": {"lr": a.lr, "warmup_ratio": 0.05},
        "train": {"steps": a.steps, "batch_size": 1, "save_every": a.steps, "seed": a.seed},
        "stage2": {"tokenizer": str(init / "tokenizer")},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipe.yaml").write_text(json.dumps(recipe, indent=2))
    t1 = time.time()
    if not (run / "model.safetensors").is_file():
        sh("train", "--config", str(out / "recipe.yaml"), "--out", str(run))
    t2 = time.time()
    test = [s for s in (data / "splits" / "synthrooms_test.txt").read_text().split() if s]
    props = test_proposals(data, out / "test_proposals", test, seed=a.seed + 1000)
    common = ["-a", str(ann / "ScanRefer_filtered_test.json"), "--scenes", str(data / "posed_images"),
              "--gt-boxes", str(ann / "gt_boxes.json"), "--model", str(run), "--json"]
    modes = {}
    for mode, extra in (("regression", []), ("proposals", ["--proposals", str(out / "test_proposals")])):
        target = out / f"eval_{mode}"
        if not (target / "metrics.json").is_file():
            sh("eval", "scanrefer", *common, *extra, "-o", str(target))
        doc = json.loads((target / "metrics.json").read_text())
        modes[mode] = {k: doc["metrics"][k] for k in ("Acc@0.25", "Acc@0.5")}
        modes[mode]["notes"] = [n for n in doc["notes"] if n.startswith("mode:")]
    extra = baselines_and_picks(data, out / "eval_proposals", props)
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    key = next((k for r in logged for k in r if k.endswith("ground_proposal_accuracy")), None)
    last = [r[key] for r in logged if key in r][-20:]
    result = {"scenes": {"train": a.scenes - len(test), "test": len(test)}, "steps": a.steps,
              "held_out": modes, **extra,
              "train_proposal_accuracy_last20": float(np.mean(last)) if last else None,
              "seconds": {"data+init": round(t1 - t0, 1), "train": round(t2 - t1, 1),
                          "eval": round(time.time() - t2, 1)}}
    (out / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Linear probes along the vision-language path: where does a model lose what the scene shows? (issue 15 item 1)

Not in the paper. For held-out synthrooms scenes, runs the model's vision pass and reads five representations:
the shared encoder's patch tokens (T_base), the Cross-Task Adapter's language tokens (T'_lang), the 3D patch
tokens (Eq. 3-4), the voxel-pooled 3D tokens the LLM sees, and the LLM's last hidden state at those scene tokens.
Each token gets the GT instance it covers (the majority of its pixels in the instance masks; pooled tokens pool the
one-hot labels the same way, so their purity shows how much pooling mixes objects). Ridge probes, fitted on half
of the scenes and scored on the other half, predict per token: object category, object colour, object centre
(first-camera frame, R^2); per scene (mean of the tokens): the count of each category. A last probe reads the LLM's
hidden state at the final prompt token of "how many <plural> are in the room?", the state the answer comes from.

Usage: python scripts/probe_tokens.py SYNTH_DIR [--model DIR] [--scenes 40] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vidllm_core.data.preprocess import preprocess_with_info
from vidllm_core.data.synth import CATEGORIES
from vidllm_core.language import prompts as P
from vidllm_core.language.pooling import pool_scene_tokens
from vidllm_core.models.vidllm import VidLLM

LEVELS = ("encoder T_base", "CTA T'_lang", "3D patch tokens", "pooled 3D tokens", "LLM hidden (scene tokens)")


def sample_indices(n: int, k: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, k).round().astype(int))


def patch_labels(mask: np.ndarray, info, grid: tuple[int, int], patch: int) -> tuple[np.ndarray, np.ndarray]:
    """Majority instance id (0 = room surface) and its pixel share for every output patch of one frame."""
    gh, gw = grid
    offs = (np.arange(patch) + 0.5)
    labels, purity = np.zeros(gh * gw, dtype=np.int64), np.zeros(gh * gw)
    for r in range(gh):
        for c in range(gw):
            u, v = np.meshgrid(c * patch + offs, r * patch + offs)
            x, y = info.output_to_source(u.ravel(), v.ravel())
            xi = np.clip(np.round(x).astype(int), 0, mask.shape[1] - 1)
            yi = np.clip(np.round(y).astype(int), 0, mask.shape[0] - 1)
            ids, counts = np.unique(mask[yi, xi], return_counts=True)
            labels[r * gw + c], purity[r * gw + c] = ids[counts.argmax()], counts.max() / counts.sum()
    return labels, purity


@torch.no_grad()
def scene_features(model: VidLLM, scene_dir: Path, num_frames: int, teachers: dict) -> dict:
    cfg = model.config
    colours = sorted((scene_dir / "color").glob("*.jpg"))
    idx = sample_indices(len(colours), num_frames)
    frames = [np.asarray(Image.open(colours[i]).convert("RGB")) for i in idx]
    images, infos = preprocess_with_info(frames, cfg.input.mode, cfg.input.image_size, cfg.encoder.patch_size)
    out = model(images[None])
    grid = tuple(int(v) for v in out["grid_hw"])
    geometry = model.geometry(out, 0)
    t3d, xyz = model.patch_tokens_3d(out["tokens_lang"][0], geometry)
    labs, purs = [], []
    for i, info in zip(idx, infos):
        mask = np.asarray(Image.open(scene_dir / "instance" / f"{colours[i].stem}.png")).astype(np.int64)
        lab, pur = patch_labels(mask, info, grid, cfg.encoder.patch_size)
        labs.append(lab)
        purs.append(pur)
    label, purity = np.concatenate(labs), np.concatenate(purs)
    meta = json.loads((scene_dir / "scene.json").read_text())
    objects = {o["id"] + 1: o for o in meta["objects"]}
    ids = sorted(objects)
    onehot = torch.zeros(label.shape[0], len(ids) + 1)
    for k, i in enumerate(ids):
        onehot[label == i, k + 1] = 1.0
    onehot[label == 0, 0] = 1.0
    pooled = pool_scene_tokens(torch.cat([t3d, onehot], 1)[None], xyz[None], cfg.language)  # the model's pooling
    keep = pooled.mask[0]
    pooled_tokens = pooled.tokens[0][keep][:, :t3d.shape[1]]
    pooled_hist = pooled.tokens[0][keep][:, t3d.shape[1]:]
    pooled_label = np.array([0] + ids)[pooled_hist.argmax(1).numpy()]
    pooled_purity = pooled_hist.max(1).values.numpy()
    levels = {
        LEVELS[0]: (out["tokens_base"][0].reshape(-1, out["tokens_base"].shape[-1]).numpy(), label, purity),
        LEVELS[1]: (out["tokens_lang"][0].reshape(-1, out["tokens_lang"].shape[-1]).numpy(), label, purity),
        LEVELS[2]: (t3d.numpy(), label, purity),
        LEVELS[3]: (pooled_tokens.numpy(), pooled_label, pooled_purity),
    }
    for name, teacher in teachers.items():  # teachers see the same frames; their grid is the student's here
        t = teacher.encode(images)
        if tuple(t.grid) != grid:
            raise SystemExit(f"error: teacher {name} has a {t.grid} patch grid, the student {grid}")
        levels[f"teacher {name}"] = (t.tokens.reshape(-1, t.tokens.shape[-1]).numpy(), label, purity)
    # first-camera frame of the GT (the frame the reconstruction is in)
    pose0 = np.loadtxt(scene_dir / "pose" / f"{colours[idx[0]].stem}.txt")
    world_to_cam0 = np.linalg.inv(pose0)
    centres = {i: (world_to_cam0 @ np.r_[_centre(o), 1.0])[:3] for i, o in objects.items()}
    counts = Counter(o["category"] for o in meta["objects"])
    result = {"levels": levels, "objects": objects, "centres": centres, "counts": counts, "count_states": None}
    lang = getattr(model, "language", None)
    if lang is None:  # a vision-only model (e.g. a Stage-1 output without LLM): no LLM levels
        return result
    # the LLM's hidden state at the scene tokens of a neutral prompt
    prompt = P.scene_caption_prompt()
    batch = lang.build_batch(pooled_tokens[None], torch.ones(1, pooled_tokens.shape[0], dtype=torch.bool), [prompt])
    hidden = lang.llm(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
                      output_hidden_states=True).hidden_states[-1][0]
    levels[LEVELS[4]] = (hidden[batch.input_ids[0] == lang.scene_id].float().numpy(), pooled_label, pooled_purity)
    # final prompt-token state of counting questions
    count_states = {}
    for cat in CATEGORIES:
        p = P.scanqa_prompt(f"how many {CATEGORIES[cat].plural} are in the room?", tokenizer=lang.tokenizer,
                            max_question_tokens=lang.max_question_tokens)
        b = lang.build_batch(pooled_tokens[None], torch.ones(1, pooled_tokens.shape[0], dtype=torch.bool), [p])
        h = lang.llm(inputs_embeds=b.inputs_embeds, attention_mask=b.attention_mask,
                     output_hidden_states=True).hidden_states[-1][0, -1]
        count_states[cat] = h.numpy()
    result["count_states"] = count_states
    return result


def _centre(o: dict) -> np.ndarray:
    return np.asarray(o["aabb"]["center"], dtype=np.float64)


def ridge(x: np.ndarray, y: np.ndarray, lam: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mu, sd = x.mean(0), x.std(0) + 1e-6
    z = (x - mu) / sd
    z1 = np.c_[z, np.ones(len(z))]
    w = np.linalg.solve(z1.T @ z1 + lam * np.eye(z1.shape[1]), z1.T @ y)
    return w, mu, sd


def predict(model: tuple, x: np.ndarray) -> np.ndarray:
    w, mu, sd = model
    return np.c_[(x - mu) / sd, np.ones(len(x))] @ w


def classify(xtr, ytr, xte, yte, classes) -> tuple[float, float]:
    onehot = (ytr[:, None] == np.asarray(classes)[None]).astype(float)
    pred = np.asarray(classes)[predict(ridge(xtr, onehot, 10.0), xte).argmax(1)]
    majority = Counter(ytr.tolist()).most_common(1)[0][0]
    return float((pred == yte).mean()), float((yte == majority).mean())


def r2(xtr, ytr, xte, yte) -> float:
    pred = predict(ridge(xtr, ytr, 10.0), xte)
    return float(1 - ((pred - yte) ** 2).sum() / ((yte - ytr.mean(0)) ** 2).sum())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("synth_dir", type=Path)
    ap.add_argument("--model", type=Path, default=None, help="model directory [default: the shipped demo model]")
    ap.add_argument("--scenes", type=int, default=40)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--teacher", action="append", default=[], metavar="KIND:PATH",
                    help="also probe a teacher's patch tokens (kind as in recipes: dino, vidllm, clip, vggt)")
    args = ap.parse_args()
    from vidllm_core.training.recipe import TeacherSpec
    from vidllm_core.training.teachers import build_teacher
    teachers = {spec: build_teacher(TeacherSpec(kind=spec.split(":", 1)[0], path=spec.split(":", 1)[1]))
                for spec in args.teacher}
    torch.manual_seed(0)
    from vidllm_core.assets import default_model_dir
    model = VidLLM.from_pretrained(args.model or default_model_dir()).eval()
    scene_dirs = sorted((args.synth_dir / "scenes").iterdir())[: args.scenes]
    feats = []
    for k, d in enumerate(scene_dirs):
        feats.append(scene_features(model, d, model.config.input.num_frames, teachers))
        print(f"\rscenes {k + 1}/{len(scene_dirs)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    half = len(feats) // 2
    train, test = feats[:half], feats[half:]
    cats, cols = sorted(CATEGORIES) + ["door", "window"], sorted({o["colour"] for f in feats for o in f["objects"].values()})
    rows = {}
    for level in feats[0]["levels"]:
        def tokens(group, min_purity=0.5):
            xs, cat, col, cen = [], [], [], []
            for f in group:
                x, lab, pur = f["levels"][level]
                sel = (lab > 0) & (pur >= min_purity)
                xs.append(x[sel])
                cat += [f["objects"][i]["category"] for i in lab[sel]]
                col += [f["objects"][i]["colour"] for i in lab[sel]]
                cen.append(np.stack([f["centres"][i] for i in lab[sel]]) if sel.any() else np.zeros((0, 3)))
            return np.concatenate(xs), np.array(cat), np.array(col), np.concatenate(cen)
        xtr, ctr, otr, etr = tokens(train)
        xte, cte, ote, ete = tokens(test)
        scene_x = lambda group: np.stack([f["levels"][level][0].mean(0) for f in group])  # noqa: E731
        count_y = lambda group: np.array([[f["counts"].get(c, 0) for c in CATEGORIES] for f in group])  # noqa: E731
        count_pred = np.clip(np.round(predict(ridge(scene_x(train), count_y(train), 10.0), scene_x(test))), 0, None)
        purity = np.concatenate([f["levels"][level][2] for f in test])
        rows[level] = {
            "object tokens (test)": int(len(xte)),
            "category acc": classify(xtr, ctr, xte, cte, cats)[0],
            "colour acc": classify(xtr, otr, xte, ote, cols)[0],
            "centre R2": r2(xtr, etr, xte, ete),
            "count acc": float((count_pred == count_y(test)).mean()),
            "mean purity": float(purity.mean()),
        }
    base = {"category acc": classify(xtr, ctr, xte, cte, cats)[1], "colour acc": classify(xtr, otr, xte, ote, cols)[1],
            "count acc": float((np.round(count_y(train).mean(0))[None] == count_y(test)).mean())}
    answer_probe = None
    if feats[0]["count_states"] is not None:
        answer_probe = count_probe(train, test)
    report = {"model": str(args.model or "shipped demo"), "scenes": [len(train), len(test)], "levels": rows,
              "baselines (majority / train-mean)": base, "LLM final prompt state, counting": answer_probe}
    print("| representation | category acc | colour acc | centre R^2 | count acc (scene) | token purity |")
    print("|---|---|---|---|---|---|")
    for level, r in rows.items():
        print(f"| {level} | {r['category acc']:.3f} | {r['colour acc']:.3f} | {r['centre R2']:.3f} | "
              f"{r['count acc']:.3f} | {r['mean purity']:.2f} |")
    print(f"| majority / mean baseline | {base['category acc']:.3f} | {base['colour acc']:.3f} | 0 | "
          f"{base['count acc']:.3f} | |")
    if answer_probe is not None:
        print(f"LLM final prompt state -> count: {answer_probe['count acc']:.3f} "
              f"(majority {answer_probe['majority']:.3f})")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


def count_probe(train: list, test: list) -> dict:
    """The count from the LLM state at the end of "how many <plural> are in the room?"."""
    qx = lambda group: np.stack([f["count_states"][c] for f in group for c in CATEGORIES])  # noqa: E731
    qy = lambda group: np.array([f["counts"].get(c, 0) for f in group for c in CATEGORIES])  # noqa: E731
    qpred = np.clip(np.round(predict(ridge(qx(train), qy(train)[:, None].astype(float), 10.0), qx(test))[:, 0]), 0, None)
    return {"count acc": float((qpred == qy(test)).mean()),
            "majority": float((qy(test) == Counter(qy(train).tolist()).most_common(1)[0][0]).mean())}


if __name__ == "__main__":
    raise SystemExit(main())

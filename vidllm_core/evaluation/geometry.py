"""Scoring of depth, camera pose and reconstruction predictions on ScanNet posed-image scenes (METRICS.md sec. 4-6;
scene layout FORMATS.md sec. 8). Prediction layout (documented in docs/evaluation.md):

    depth:  PRED/<scene>/depth/<frame>.png (uint16 millimetres) or <frame>.npy (float metres), GT-sized
    pose:   PRED/<scene>/cameras.json  {"<frame>": [[4x4 camera-to-world]], ...}  (ScanNet world, OpenCV axes)
    recon:  PRED/<scene>.ply (point cloud or mesh; vertices in metres, ScanNet world frame)

GT for recon: `<scene>/<scene>_vh_clean_2.ply` vertices (the official rule), else `<scene>/mesh.ply` (a synthetic
scene's exact surface, e.g. `vidllm synth`), whose coarse faces are sampled uniformly (seeded) at
`MESH_SAMPLES_PER_M2` instead, since its vertices are only the corners of its boxes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from vidllm_core.data.benchmarks import Problems, open_scene, read_depth_png, scene_path
from vidllm_core.errors import DataError
from vidllm_core.evaluation.context import EvalContext, metric
from vidllm_core.evaluation.predictions import PredictionStats


def prediction_path(kind: str, pred_dir: Path, scene_id: str) -> Path:
    base = scene_path(pred_dir, scene_id)
    return {"depth": base, "pose": base / "cameras.json", "recon": base.with_name(f"{scene_id}.ply")}[kind]


def index_prediction_dir(kind: str, pred_dir: Path, scene_ids: list[str], known: set[str]
                         ) -> tuple[dict[str, Path], PredictionStats]:
    """Map scene -> its prediction path under `pred_dir`; count scenes without one and entries for unknown scenes."""
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise DataError(f"{kind} predictions must be a directory: {pred_dir}")
    entries = [p for p in pred_dir.iterdir() if not p.name.startswith(".")]
    if not entries:
        raise DataError(f"{pred_dir}: empty predictions directory")
    stats = PredictionStats(records=len(entries))
    out = {}
    for s in scene_ids:
        p = prediction_path(kind, pred_dir, s)
        if p.exists():
            out[s] = p
    names = {p.stem if p.suffix == ".ply" else p.name for p in entries}
    stats.unknown = len([n for n in names if n not in set(scene_ids) and n not in known])
    stats.matched = len(out)
    stats.missing = len(scene_ids) - len(out)
    return out, stats


def _mean_dicts(rows: list[dict]) -> dict[str, float]:
    keys = [k for k, v in rows[0].items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not k.startswith("n_")]
    out = {}
    for k in keys:
        vals = [float(r[k]) for r in rows if isinstance(r.get(k), (int, float)) and math.isfinite(float(r[k]))]
        out[k] = float(np.mean(vals)) if vals else float("nan")
    return out


def _read_pred_depth(scene_pred: Path, frame: str) -> np.ndarray | None:
    png, npy = scene_pred / "depth" / f"{frame}.png", scene_pred / "depth" / f"{frame}.npy"
    if png.is_file():
        return read_depth_png(png)
    if npy.is_file():
        try:
            arr = np.load(npy, allow_pickle=False)
        except ValueError as exc:
            raise DataError(f"{npy}: unreadable depth ({exc})") from None
        return np.asarray(arr, dtype=np.float32).squeeze()
    return None


MESH_SAMPLES_PER_M2 = 10_000     # 1 point per cm^2: about 4 per 2 cm down-sampling voxel face
MESH_SAMPLES_MAX = 3_000_000


def _surface_points(path: Path) -> np.ndarray:
    """Area-uniform samples of a mesh's surface (seed 0), `MESH_SAMPLES_PER_M2` per square metre (capped)."""
    import trimesh

    try:
        mesh = trimesh.load(path, process=False, force="mesh")
    except Exception as exc:  # trimesh raises many types for unreadable files
        raise DataError(f"{path}: unreadable mesh ({type(exc).__name__}: {exc})") from None
    faces = getattr(mesh, "faces", None)
    if faces is None or len(faces) == 0:
        return _points(path)
    count = int(min(MESH_SAMPLES_MAX, max(1, math.ceil(float(mesh.area) * MESH_SAMPLES_PER_M2))))
    samples, _ = trimesh.sample.sample_surface(mesh, count, seed=0)
    return np.asarray(samples, dtype=np.float64)


def gt_reconstruction(scenes_dir: Path, scene_id: str) -> np.ndarray:
    """GT points of a scene: `<scene>_vh_clean_2.ply` vertices, else samples of the surface of `mesh.ply`."""
    root = scene_path(scenes_dir, scene_id)
    official = root / f"{scene_id}_vh_clean_2.ply"
    if official.is_file():
        return _points(official)
    if (root / "mesh.ply").is_file():
        return _surface_points(root / "mesh.ply")
    raise DataError(f"no GT reconstruction for scene {scene_id}: {official} (or mesh.ply) not found")


def _points(path: Path) -> np.ndarray:
    import trimesh

    try:
        geom = trimesh.load(path, process=False)
    except Exception as exc:  # trimesh raises many types for unreadable files
        raise DataError(f"{path}: unreadable point cloud / mesh ({type(exc).__name__}: {exc})") from None
    verts = getattr(geom, "vertices", None)
    if verts is None or len(verts) == 0:
        raise DataError(f"{path}: no points")
    return np.asarray(verts, dtype=np.float64)


def score(kind: str, items: list, preds: Mapping[str, Any], ctx: EvalContext) -> dict:
    if ctx.scenes_dir is None:
        raise DataError(f"{kind} needs --scenes DIR (ScanNet posed-image scene folders with the ground truth)")
    rows: list[dict] = []
    context_rows: list[dict] = []
    pose_r: list[np.ndarray] = []
    pose_t: list[np.ndarray] = []
    missing_frames = 0
    scored_scenes = 0
    tick = ctx.ticker(f"{kind} scenes", len(items))
    for item in items:
        sid = item.scene_id
        pred = preds.get(sid)
        tick()
        if pred is None:
            continue
        pred = Path(pred)
        if kind == "recon":
            rows.append(metric("reconstruction_metrics")(_points(pred), gt_reconstruction(ctx.scenes_dir, sid)))
            scored_scenes += 1
            continue
        scene = open_scene(ctx.scenes_dir, sid, Problems(strict=False))
        if kind == "depth":
            for frame in scene.frames:
                if frame.depth is None:
                    continue
                p = _read_pred_depth(pred, frame.name)
                if p is None:
                    missing_frames += 1
                    continue
                gt = scene.depth(frame)
                if p.shape != gt.shape:
                    raise DataError(f"{pred}: depth of frame {frame.name} is {p.shape}, GT is {gt.shape}")
                if (gt > 0).any():
                    rows.append(metric("depth_metrics")(p, gt, align=ctx.depth_align))
                    if ctx.depth_align == "none":   # context: the same predictions median-scaled per image
                        context_rows.append(metric("depth_metrics")(p, gt, align="median"))
            scored_scenes += 1
        elif kind == "pose":
            try:
                cams = json.loads(pred.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise DataError(f"{pred}: malformed JSON ({exc})") from None
            if not isinstance(cams, dict):
                raise DataError(f"{pred}: expected {{\"<frame>\": 4x4 camera-to-world}}")
            pred_w2c, gt_w2c = [], []
            for frame in scene.frames:
                if frame.name not in cams:
                    missing_frames += 1
                    continue
                m = np.asarray(cams[frame.name], dtype=np.float64)
                if m.shape != (4, 4) or not np.isfinite(m).all():
                    raise DataError(f"{pred}: frame {frame.name}: pose must be a finite 4x4 matrix")
                g = scene.pose(frame)
                if not np.isfinite(g).all():
                    continue   # GT tracking failure: frame not scored
                pred_w2c.append(np.linalg.inv(m))
                gt_w2c.append(np.linalg.inv(g))
            if len(gt_w2c) >= 2:   # pairs of all scenes are pooled, as VGGT pools the sequences of a category
                r_err, t_err = metric("pose_errors")(np.stack(pred_w2c), np.stack(gt_w2c))
                pose_r.append(np.asarray(r_err))
                pose_t.append(np.asarray(t_err))
                scored_scenes += 1
    if missing_frames:
        ctx.note(f"{missing_frames} GT frame(s) have no predicted {kind} and are not scored")
    if pose_r:
        rows.append(metric("pose_scores_from_errors")(np.concatenate(pose_r), np.concatenate(pose_t)))
    if not rows:
        raise DataError(f"no {kind} predictions could be scored")
    out = _mean_dicts(rows)
    if kind == "pose":
        out["n_pairs"] = rows[0]["n_pairs"]
    out["n_scenes"] = scored_scenes
    out["n_scenes_total"] = len(items)
    if kind == "depth":
        out["n_images"] = len(rows)
        out["align"] = ctx.depth_align
        if context_rows:
            out["median_aligned"] = _mean_dicts(context_rows)
    return out

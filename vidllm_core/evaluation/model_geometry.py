"""Model-driven depth / pose / recon evaluation on ScanNet posed-image scenes (paper App. A.2, Tab. 9): sample the
model's frames, reconstruct them at real scale (Sec. 3.2), and write per-scene predictions in the directory layout
`evaluation/geometry.py` scores; the reconstruction enters the GT world through the GT pose of the first sampled
frame, as video 3D-LLMs do for ScanNet-frame evaluation (issue 5 item 3).

Per scene, under `OUT/predictions/` (each written atomically; the scene's line in `OUT/predictions.jsonl`, written
last, marks it complete, so an interrupted run redoes at most one scene):

    <scene>/depth/<frame>.png   predicted depth of every sampled frame with GT depth, resampled (bilinear) to the
                                GT depth image through the colour / depth intrinsics, uint16 millimetres
    <scene>/cameras.json        {"<frame>": 4x4 camera-to-world} of the sampled frames, in the GT world
    <scene>/meta.json           sampled frames, anchor frame, scale, metric flag, model, variant
    <scene>.ply                 (recon) confident points (50 % confidence percentile, 1 cm voxel thinning), GT world
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from vidllm_core.errors import CheckpointError, DataError
from vidllm_core.evaluation.context import EvalContext

PREDICTIONS_SUBDIR = "predictions"
RUN_FILE = "run.json"
CONF_PERCENTILE = 50.0        # the `vidllm reconstruct` default (VGGT demo): drop the least confident half
POINT_VOXEL = 0.01            # metres; the recon metric down-samples at 0.02 m anyway
#: variants that change a language task's inputs, not the model (`language_hooks`): the model loads as is.
INPUT_VARIANTS = ("oracle-box",)
MODEL_VARIANTS: dict[str, str] = {
    "no-alignment": "the model with its real-scale alignment off (alignment.enabled=False: the metric-depth map "
                    "replaces the aligned depth; the 'MD w/o alignment' ablation)",
}


def check_scenes_dir(ctx: EvalContext, task: str) -> Path:
    if ctx.scenes_dir is None:
        raise DataError(f"{task} --model needs --scenes DIR (ScanNet posed-image scene folders)")
    scenes = Path(ctx.scenes_dir)
    if not scenes.is_dir():
        raise DataError(f"scenes directory not found: {scenes}")
    return scenes


def load_model(model_dir: Path, ctx: EvalContext, language: bool = True) -> Any:
    """The model of `model_dir` on `ctx.device` (loaded once per run), with `ctx.model_variant` applied;
    `language=False` loads the vision side only (the geometry tasks)."""
    def build() -> Any:
        from vidllm_core.models.vidllm import VidLLM

        model = VidLLM.from_pretrained(model_dir, device=ctx.device, language=language)
        if ctx.model_variant == "no-alignment":
            model.config = replace(model.config, alignment=replace(model.config.alignment, enabled=False))
        elif ctx.model_variant is not None and ctx.model_variant not in INPUT_VARIANTS:
            raise DataError(f"unknown model baseline {ctx.model_variant!r}; available: {', '.join(MODEL_VARIANTS)}")
        return model
    return ctx.cached("model" if language else "vision-model", build)


def _run_signature(model_dir: Path, ctx: EvalContext, num_frames: int) -> dict:
    return {"model": str(Path(model_dir).resolve()), "variant": ctx.model_variant, "num_frames": num_frames}


def _guard_resume(pred_dir: Path, signature: dict) -> None:
    """Refuse to mix scenes of different models / variants / frame counts in one output directory."""
    path = pred_dir / RUN_FILE
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            old = None
        if old != signature:
            raise DataError(f"{pred_dir} holds predictions of another run ({old}); resume with the same --model, "
                            "--baseline and --frames, or use a new -o directory")
        return
    from vidllm_core.io import write_json_atomic

    write_json_atomic(path, signature)


def _write_depth_png(path: Path, depth_m: np.ndarray) -> None:
    from PIL import Image

    from vidllm_core.export import depth_to_millimetres

    Image.fromarray(np.ascontiguousarray(depth_to_millimetres(depth_m))).save(path)


def predict_scene(kind: str, model_dir: Path, item: Any, ctx: EvalContext) -> Mapping[str, Any]:
    """Reconstruct one scene with the model and write its prediction files; returns `{"path": ...}` for
    `predictions.jsonl` (the path `geometry.score` reads for `kind`)."""
    from vidllm_core.data.benchmarks import Problems, open_scene
    from vidllm_core.data.frames import ScanNetSceneSource
    from vidllm_core.evaluation.geometry import prediction_path
    from vidllm_core.export import write_point_cloud
    from vidllm_core.io import replace_dir, write_json_atomic
    from vidllm_core.pipelines.reconstruct import preprocess_settings
    from vidllm_core.pipelines.vision_pass import run_vision_pass

    scenes_dir = check_scenes_dir(ctx, kind)
    if ctx.predictions_dir is None:
        raise ValueError("ctx.predictions_dir must be set for model-driven evaluation")
    pred_dir = Path(ctx.predictions_dir)
    source = ScanNetSceneSource(scenes_dir / item.scene_id,
                                open_scene(scenes_dir, item.scene_id, Problems(strict=False)))
    model = load_model(model_dir, ctx, language=False)
    num_frames = ctx.num_frames or preprocess_settings(model).num_frames
    pred_dir.mkdir(parents=True, exist_ok=True)
    ctx.cached("resume-guard", lambda: _guard_resume(pred_dir, _run_signature(model_dir, ctx, num_frames)))
    ctx.note(f"model run: each scene is reconstructed from {num_frames} frames sampled uniformly from its colour "
             "frames; only those frames are scored for depth and pose")

    scene = run_vision_pass(model, source, num_frames=num_frames, device=ctx.device)
    rec, gt, frames = scene.reconstruction, scene.ground_truth, scene.frame_ids
    if not rec.metric:
        ctx.note("the model is not metric (no metric-depth head): depth and points are in relative units")
    # world_gt = c2w_gt[a] @ w2c_pred[a] @ world_pred through the first sampled frame with a finite GT pose
    place = scene.placement if kind == "depth" else scene.require_placement()
    to_gt = None if place is None else place.to_gt
    c2w_pred = rec.camera_to_world()

    final = pred_dir / item.scene_id
    if kind == "recon":
        assert to_gt is not None
        cloud = rec.point_cloud(conf_percentile=CONF_PERCENTILE, voxel_size=POINT_VOXEL)
        if not len(cloud.points):
            raise CheckpointError(f"scene {item.scene_id}: the model predicted no finite point")
        points = cloud.points.astype(np.float64) @ to_gt[:3, :3].T + to_gt[:3, 3]
        write_point_cloud(prediction_path("recon", pred_dir, item.scene_id), points, cloud.colors, cloud.confidence)

    tmp = Path(tempfile.mkdtemp(prefix=f".{item.scene_id}.", dir=pred_dir))
    try:
        cams = {} if to_gt is None else {f: (to_gt @ c2w_pred[i]).tolist() for i, f in enumerate(frames)}
        write_json_atomic(tmp / "cameras.json", cams)
        if kind == "depth":
            (tmp / "depth").mkdir()
            for i, f in enumerate(frames):
                size = gt.depth_size(i)
                if size is None:
                    continue
                depth = rec.depth_at(i, size[1], size[0], gt.intrinsic_depth, gt.intrinsic_color)
                _write_depth_png(tmp / "depth" / f"{f}.png", depth)
        write_json_atomic(tmp / "meta.json", {
            "scene_id": item.scene_id, "frames": frames,
            "anchor_frame": None if place is None else place.anchor_id, "scale": rec.scale,
            "metric": rec.metric, "network_resolution": [rec.width, rec.height],
            "preprocess": {"mode": rec.settings.mode, "image_size": rec.settings.image_size},
            **_run_signature(model_dir, ctx, num_frames)})
        replace_dir(tmp, final)   # replaces an interrupted earlier attempt (its jsonl line was never written)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return {"path": str(prediction_path(kind, pred_dir, item.scene_id).resolve())}


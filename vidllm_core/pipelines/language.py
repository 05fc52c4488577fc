"""3D question answering, object / scene captioning and grounding on an encoded scene (Vid-LLM Sec. 3.3-3.4,
Sec. 4 tasks; prompts after LLaVA-3D / Video-3D-LLM, shared/docs/PROMPTS.md).

Every function takes a `VidLLM` with its language branch and a `SceneEncoding` (`VidLLM.encode_scene`, or
`Scene.encoding` of `pipelines.vision_pass.run_vision_pass(..., tokens=True)`). Boxes are axis-aligned `[cx, cy, cz, dx, dy, dz]` in metres, in a
gravity-aligned box frame (`geometry.box_frame`) for grounding and captioning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from vidllm_core.errors import CheckpointError, DataError
from vidllm_core.geometry.box_frame import BoxFrame, estimate_box_frame
from vidllm_core.geometry.unproject import confidence_mask
from vidllm_core.language import prompts as P
from vidllm_core.models.vidllm import SceneEncoding, VidLLM

__all__ = ["ANSWER_BATCH_SIZE", "Answer", "Grounding", "answer_prompts", "ask", "caption", "ground", "scene_bounds",
           "require_language"]


@dataclass(frozen=True)
class Answer:
    """question: the user text as asked (prompt for captions); answer: generated text; truncated: the question was
    cut to `language.max_question_tokens`."""

    question: str
    answer: str
    truncated: bool = False


@dataclass(frozen=True)
class Grounding:
    """boxes [K, 6] metres (best first) in `frame` (a `geometry.box_frame.BoxFrame`), scores [K] in [0, 1];
    truncated: the description was cut."""

    description: str
    boxes: np.ndarray
    scores: np.ndarray
    frame: BoxFrame
    truncated: bool = False


# Greedy answers generated together on one scene (`answer_prompts`); bounds the batch's memory (B x (3D tokens +
# prompt) positions through the LLM).
ANSWER_BATCH_SIZE = 16


def require_language(model: VidLLM) -> None:
    """CheckpointError unless the model has its language branch."""
    if not model.has_language:
        raise CheckpointError("this model has no language branch (no LLM): write one with `vidllm init --preset "
                              "demo` or `vidllm init --llm DIR`")


def _scene(enc: SceneEncoding) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return enc.tokens[None], enc.xyz[None], enc.mask[None]


def answer_prompts(model: VidLLM, enc: SceneEncoding, prompts: Sequence[P.TaskPrompt], *, max_new_tokens: int = 32,
                   temperature: float = 0.0, seed: int = 0, batch_size: int = ANSWER_BATCH_SIZE) -> list[str]:
    """Generate one answer per prompt. Greedy answers (temperature 0) are generated `batch_size` prompts at a time
    on the one scene (left padding, `SceneLanguageModel.generate`): the same answers as one prompt at a time
    (tests/language/test_batched_answers.py). Sampled answers are generated one prompt at a time, each from `seed`,
    so a sampled answer never depends on the other prompts. The text path reads no token positions beyond those
    inside the tokens (Eq. 4, the reconstruction's frame, in training as here); a box written in a prompt is in the
    box frame in both."""
    require_language(model)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    tokens, xyz, mask = _scene(enc)
    step = batch_size if temperature == 0 else 1
    answers: list[str] = []
    for i in range(0, len(prompts), step):
        chunk = list(prompts[i:i + step])
        b = len(chunk)  # the scene's tokens are shared by the batch (expand: no copy)
        answers += model.language.generate(tokens.expand(b, -1, -1), xyz.expand(b, -1, -1), mask.expand(b, -1),
                                           chunk, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    return answers


def ask(model: VidLLM, enc: SceneEncoding, questions: Sequence[str], *, situation: str | None = None,
        max_new_tokens: int = 32, temperature: float = 0.0, seed: int = 0) -> list[Answer]:
    """Answer questions about the scene (ScanQA prompt; SQA3D prompt when a `situation` is given).

    Raises DataError for an empty question; over-long questions are truncated (`Answer.truncated`).
    """
    require_language(model)
    tok, limit = model.language.tokenizer, model.language.max_question_tokens
    prompts = [P.sqa3d_prompt(situation, q, tokenizer=tok, max_question_tokens=limit) if situation is not None
               else P.scanqa_prompt(q, tokenizer=tok, max_question_tokens=limit) for q in questions]
    answers = answer_prompts(model, enc, prompts, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    return [Answer(q, a, p.truncated) for q, p, a in zip(questions, prompts, answers)]


def scene_bounds(enc: SceneEncoding, low: float = 1.0, high: float = 99.0,
                 frame: BoxFrame | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(min, max) xyz of the reconstruction in metres: percentiles `low` / `high` of the confident world points
    (confidence >= its median) together with the pooled token positions; in `frame` (a box frame) when given,
    else in the reconstruction's world."""
    g = enc.geometry
    pts = g.world_points.reshape(-1, 3).float()
    conf = g.depth_conf.reshape(-1).float()
    keep = confidence_mask(conf, 50.0, valid=torch.isfinite(pts).all(-1))   # the confident half
    pts = pts[keep].cpu().numpy()
    xyz = enc.xyz[enc.mask].float().cpu().numpy()
    both = np.concatenate([pts, xyz]) if len(pts) else xyz
    if not len(both):
        raise DataError("the reconstruction has no valid point")
    if frame is not None:
        both = frame.points_from_world(both.astype(np.float64))
    return np.percentile(both, low, axis=0), np.percentile(both, high, axis=0)


def caption(model: VidLLM, enc: SceneEncoding, *, box: Sequence[float] | None = None,
            point: Sequence[float] | None = None, max_new_tokens: int = 48, temperature: float = 0.0, seed: int = 0,
            margin: float = 0.5, frame: BoxFrame | None = None) -> Answer:
    """Describe the object at a box `[cx, cy, cz, dx, dy, dz]` or a point `[x, y, z]` (Scan2Cap prompt), or the whole
    scene when neither is given. The location is in the box frame `frame` (the frame `ground` answers in and
    Stage 2 trains the Scan2Cap prompt in; estimated from the reconstruction when None); the 3D tokens are read in
    that frame too. A location outside the reconstruction (+ `margin` metres) raises DataError."""
    require_language(model)
    if frame is None:
        frame = estimate_box_frame(enc.geometry)
    if box is None and point is None:
        prompt = P.scene_caption_prompt()
    else:
        prompt = P.scan2cap_prompt(box=box, point=point)
        lo, hi = scene_bounds(enc, frame=frame)
        P.check_in_scene(list(box if box is not None else point)[:3], lo, hi, margin=margin)  # type: ignore[arg-type]
    text = answer_prompts(model, enc, [prompt], max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)[0]
    return Answer(prompt.prompt.split("\n", 1)[-1], text)


def ground(model: VidLLM, enc: SceneEncoding, description: str, *, multiple: bool = False,
           proposals: np.ndarray | torch.Tensor | None = None, threshold: float | None = None,
           frame: BoxFrame | None = None) -> Grounding:
    """Boxes the description refers to: the best one (ScanRefer), or all above `threshold` (Multi3DRefer,
    `multiple=True`: possibly none). With `proposals` [P, 6] the answer is chosen among them.

    Boxes (and proposals) are axis-aligned in the box frame `frame` (`geometry.box_frame`: z up, walls along the
    axes); without one it is estimated from the reconstruction (`estimate_box_frame`). The token positions are
    moved into that frame before the grounding head reads them."""
    require_language(model)
    if frame is None:
        frame = estimate_box_frame(enc.geometry)
    lang = model.language
    prompt = P.grounding_prompt(description, multiple=multiple, tokenizer=lang.tokenizer,
                                max_question_tokens=lang.max_question_tokens)
    props = None
    if proposals is not None:
        arr = torch.as_tensor(np.asarray(proposals, dtype=np.float32)).reshape(-1, 6)
        if not torch.isfinite(arr).all() or (arr[:, 3:] <= 0).any():
            raise DataError("proposals must be finite [cx, cy, cz, dx, dy, dz] boxes with positive sizes")
        props = [arr.to(enc.tokens.device)]
    if threshold is None:
        cfg = model.config.language
        threshold = cfg.ground_threshold if cfg is not None else 0.5
    tokens, xyz, mask = _scene(enc)
    boxes, scores = lang.ground(tokens, frame.points_from_world(xyz), mask, [prompt], proposals=props,
                                multiple=multiple, threshold=threshold)[0]
    return Grounding(description, boxes.float().cpu().numpy().reshape(-1, 6), scores.float().cpu().numpy().reshape(-1),
                     frame, prompt.truncated)

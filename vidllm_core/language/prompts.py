"""Task prompts and targets for 3D QA, captioning and grounding (Vid-LLM Sec. 4; phrasing after LLaVA-3D / Video-3D-LLM, shared/docs/PROMPTS.md).

Each builder returns a `TaskPrompt`: the user-turn text (the `<scene>` placeholder first, then the instruction) and
the target text (training) without the end-of-sequence token, which the model appends. `chat_text` wraps a user
turn in the tokenizer's chat template when it has one (real instruction-tuned LLMs), else in a plain
`USER: ... ASSISTANT: ` template (the from-scratch demo LLM). Locations are plain text in metres with 2 decimals,
as VG-LLM writes them; boxes are axis-aligned `[cx, cy, cz, dx, dy, dz]` in the reconstruction's world frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from vidllm_core.errors import DataError
from vidllm_core.language.tokenizer import GROUND, SCENE, SPECIAL_TOKENS
from vidllm_core.tasks import LANGUAGE_TASKS

__all__ = [
    "TaskPrompt", "TASKS", "QA_SUFFIX", "CAPTION_INSTRUCTION", "SCENE_INSTRUCTION", "GROUNDING_INSTRUCTION",
    "MULTI_TARGET_NOTE", "clean_text", "truncate_text", "format_location", "scanqa_prompt", "sqa3d_prompt",
    "scan2cap_prompt", "scene_caption_prompt", "grounding_prompt", "chat_text", "check_in_scene",
]

TASKS = (*LANGUAGE_TASKS, "scene")  # the benchmark tasks (declared in vidllm_core.tasks) + whole-scene captions
QA_SUFFIX = "Answer the question using a single word or phrase."  # LLaVA-3D / Chat-Scene / VG-LLM (SQA3D)
CAPTION_INSTRUCTION = "Describe the object in detail."  # LLaVA-3D Scan2Cap
SCENE_INSTRUCTION = "Describe the scene in detail."  # ours: no reference phrasing for whole-scene description
GROUNDING_INSTRUCTION = "Identify the object according to the following description."  # Video-3D-LLM ScanRefer
MULTI_TARGET_NOTE = "There may be no corresponding object, or there may be one or more objects."  # V3D Multi3DRefer
PLAIN_USER, PLAIN_ASSISTANT = "USER: ", "\nASSISTANT: "


@dataclass(frozen=True)
class TaskPrompt:
    """One prompt.

    Attributes:
        task: one of `TASKS`.
        prompt: user-turn text with exactly one `<scene>` placeholder (at the start).
        target: answer text without end-of-sequence, or None at inference.
        truncated: True when a user text was cut to the question-token limit (the CLI prints a warning).
    """

    task: str
    prompt: str
    target: str | None = None
    truncated: bool = False


def clean_text(text: str, what: str = "question") -> str:
    """Strip whitespace and the reserved tokens from user text; an empty result raises DataError."""
    if not isinstance(text, str):
        raise DataError(f"{what} must be text, got {type(text).__name__}")
    try:  # undecodable bytes (a non-UTF-8 argument or stdin line) arrive as lone surrogates
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DataError(f"{what} is not valid UTF-8 text (undecodable byte at character {exc.start})") from None
    for special in SPECIAL_TOKENS:
        text = text.replace(special, " ")
    text = " ".join(text.split())
    if not text:
        raise DataError(f"{what} is empty")
    return text


def truncate_text(text: str, max_tokens: int, tokenizer: PreTrainedTokenizerBase | None = None) -> tuple[str, bool]:
    """Cut `text` to `max_tokens` tokens of `tokenizer` (whitespace words without one); returns (text, truncated)."""
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    if tokenizer is None:
        words = text.split()
        return (text, False) if len(words) <= max_tokens else (" ".join(words[:max_tokens]), True)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) <= max_tokens:
        return text, False
    return tokenizer.decode(ids[:max_tokens], skip_special_tokens=True).strip(), True


def _user_text(text: str, what: str, tokenizer: PreTrainedTokenizerBase | None, max_tokens: int) -> tuple[str, bool]:
    return truncate_text(clean_text(text, what), max_tokens, tokenizer)


def format_location(values: Sequence[float]) -> str:
    """`[1.23, -0.50, 2.00]`: metres with 2 decimals (no "-0.00"); non-finite values raise DataError."""
    vals = [float(v) for v in values]
    if not all(math.isfinite(v) for v in vals):
        raise DataError(f"location has non-finite values: {vals}")
    return "[" + ", ".join(f"{(0.0 if abs(v) < 0.005 else v):.2f}" for v in vals) + "]"


def scanqa_prompt(question: str, answer: str | None = None, *, tokenizer: PreTrainedTokenizerBase | None = None,
                  max_question_tokens: int = 256) -> TaskPrompt:
    """ScanQA question answering: `<scene>\\n{question} Answer the question using a single word or phrase.`"""
    q, cut = _user_text(question, "question", tokenizer, max_question_tokens)
    return TaskPrompt("scanqa", f"{SCENE}\n{q} {QA_SUFFIX}", _target(answer), cut)


def sqa3d_prompt(situation: str, question: str, answer: str | None = None, *,
                 tokenizer: PreTrainedTokenizerBase | None = None, max_question_tokens: int = 256) -> TaskPrompt:
    """SQA3D situated QA: `<scene>\\n{situation} {question} Answer ...`; situation and question are each limited."""
    s, cut_s = _user_text(situation, "situation", tokenizer, max_question_tokens)
    q, cut_q = _user_text(question, "question", tokenizer, max_question_tokens)
    return TaskPrompt("sqa3d", f"{SCENE}\n{s} {q} {QA_SUFFIX}", _target(answer), cut_s or cut_q)


def scan2cap_prompt(*, box: Sequence[float] | None = None, point: Sequence[float] | None = None,
                    caption: str | None = None) -> TaskPrompt:
    """Scan2Cap object captioning; the object is a box `[cx, cy, cz, dx, dy, dz]` or a point `[x, y, z]` (metres).

    `<scene>\\nThe related object is located at [x, y, z]. Describe the object in detail.` (LLaVA-3D wording with
    VG-LLM's text coordinates); a box adds `with size [dx, dy, dz]`.
    """
    if (box is None) == (point is None):
        raise DataError("give exactly one of a box [cx,cy,cz,dx,dy,dz] or a point [x,y,z]")
    if box is not None:
        if len(box) != 6:
            raise DataError(f"a box needs 6 numbers cx,cy,cz,dx,dy,dz, got {len(box)}")
        if not all(float(v) > 0 for v in box[3:]):
            raise DataError(f"box sizes must be positive, got {[float(v) for v in box[3:]]}")
        where = f"{format_location(box[:3])} with size {format_location(box[3:])}"
    else:
        assert point is not None
        if len(point) != 3:
            raise DataError(f"a point needs 3 numbers x,y,z, got {len(point)}")
        where = format_location(point)
    return TaskPrompt("scan2cap", f"{SCENE}\nThe related object is located at {where}. {CAPTION_INSTRUCTION}",
                      _target(caption))


def scene_caption_prompt(description: str | None = None) -> TaskPrompt:
    """Whole-scene description: `<scene>\\nDescribe the scene in detail.`"""
    return TaskPrompt("scene", f"{SCENE}\n{SCENE_INSTRUCTION}", _target(description))


def grounding_prompt(description: str, *, multiple: bool = False, tokenizer: PreTrainedTokenizerBase | None = None,
                     max_question_tokens: int = 256) -> TaskPrompt:
    """ScanRefer (one target) / Multi3DRefer (`multiple=True`: zero, one or many) grounding after Video-3D-LLM.

    `<scene>\\nIdentify the object according to the following description.\\n{description}` (+ the multi-target
    note). The target is the single `<ground>` token: its hidden state queries the grounding head.
    """
    d, cut = _user_text(description, "description", tokenizer, max_question_tokens)
    text = f"{SCENE}\n{GROUNDING_INSTRUCTION}\n{d}"
    if multiple:
        text += f"\n{MULTI_TARGET_NOTE}"
    return TaskPrompt("multi3drefer" if multiple else "scanrefer", text, GROUND, cut)


def _target(text: str | None) -> str | None:
    if text is None:
        return None
    return clean_text(text, "target")


def chat_text(tokenizer: PreTrainedTokenizerBase, prompt: str, system: str | None = None) -> str:
    """The full prompt string up to where the answer starts (encode it with `add_special_tokens=False`).

    With a chat template: `apply_chat_template([system?, user], add_generation_prompt=True)`. Without:
    `{bos}USER: {prompt}\\nASSISTANT: ` (system text, if any, as a first line).
    """
    if getattr(tokenizer, "chat_template", None):
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    head = tokenizer.bos_token or ""
    if system:
        head += system + "\n"
    return f"{head}{PLAIN_USER}{prompt}{PLAIN_ASSISTANT}"


def check_in_scene(location: Sequence[float], scene_min: Sequence[float], scene_max: Sequence[float],
                   margin: float = 0.5) -> None:
    """Raise DataError when a point / box centre lies outside the reconstruction's bounds grown by `margin` metres."""
    loc = [float(v) for v in location[:3]]
    lo = [float(v) - margin for v in scene_min]
    hi = [float(v) + margin for v in scene_max]
    if not all(a <= v <= b for v, a, b in zip(loc, lo, hi)):
        raise DataError(f"location {format_location(loc)} lies outside the reconstruction "
                        f"(bounds {format_location(scene_min)} to {format_location(scene_max)} m)")

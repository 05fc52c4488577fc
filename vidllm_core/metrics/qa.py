"""ScanQA / SQA3D exact match: EM@1, refined EM and the LEO / LLaVA-3D answer cleaning.

Reference: METRICS.md sec. 2 (ScanQA `scripts/score.py`; LEO `data/data_utils.py::clean_answer` and
`evaluator/scanqa_eval.py`; LLaVA-3D `llava/eval/scanqa_evaluator.py::answer_match`; SQA3D per-type EM).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from vidllm_core.errors import DataError

__all__ = ["answer_match", "clean_answer", "exact_match", "qa_scores", "refined_exact_match"]

_NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
            "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"]

# (pattern, replacement) applied in this order after lower-casing (METRICS.md 2.2 steps 2-7).
_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"[ ]+$"), ""),
    (re.compile(r"^[ ]+"), ""),
    (re.compile(r" {2,}"), " "),
    (re.compile(r"\.[ ]{2,}"), ". "),
    (re.compile(r"[^a-zA-Z0-9,'\s\-:]+"), ""),
    (re.compile("\u00e7"), "c"),        # can never fire (deleted by the rule above); kept for fidelity
    (re.compile("\u2019"), "'"),        # idem
    (re.compile(r"\bletf\b"), "left"),
    (re.compile(r"\blet\b"), "left"),
    (re.compile(r"\btehre\b"), "there"),
    (re.compile(r"\brigth\b"), "right"),
    (re.compile(r"\brght\b"), "right"),
    (re.compile(r"\bbehine\b"), "behind"),
    (re.compile(r"\btv\b"), "TV"),
    (re.compile(r"\bchai\b"), "chair"),
    (re.compile(r"\bwasing\b"), "washing"),
    (re.compile(r"\bwaslked\b"), "walked"),
    (re.compile(r"\boclock\b"), "o'clock"),
    (re.compile(r"\bo'[ ]+clock\b"), "o'clock"),
    (re.compile(r"\b0\b"), "zero"),
    (re.compile(r"\bnone\b"), "zero"),
    *[(re.compile(rf"\b{i}\b"), word) for i, word in enumerate(_NUMBERS) if i > 0],
    (re.compile(r"\b23\b"), "twenty-three"),
    (re.compile(r"\b([a-zA-Z]+)([0-9])\b"), r"\g<1>"),
    (re.compile(r"\ba\b ([a-zA-Z]+)"), r"\g<1>"),
    (re.compile(r"\ban\b ([a-zA-Z]+)"), r"\g<1>"),
    (re.compile(r"\bthe\b ([a-zA-Z]+)"), r"\g<1>"),
    (re.compile(r"\bbackwards\b"), "backward"),
]


def clean_answer(s: str) -> str:
    """LEO / LLaVA-3D / Video-3D-LLM answer cleaning (lower-case, strip, drop punctuation, typo/number maps, articles).

    Quirks kept on purpose: only the space character is trimmed (tabs/newlines survive), trimming happens before
    punctuation removal (`"brown ."` -> `"brown "`), `tv` becomes upper-case `TV`, commas/apostrophes/hyphens/colons
    are kept, a single trailing digit after letters is dropped (`chair1` -> `chair`).
    """
    s = s.lower()
    for pattern, repl in _RULES:
        s = pattern.sub(repl, s)
    return s


def _nows(s: str) -> str:
    return "".join(s.split())


def answer_match(pred: str, gts: Sequence[str], ordered: bool = False) -> tuple[int, int]:
    """(EM, refined EM) for already-cleaned strings.

    ordered=False: LLaVA-3D `answer_match` (exact anywhere wins, else whitespace-free substring either way).
    ordered=True: LEO `ScanQAEvaluator.answer_match` (first reference that is equal OR a substring decides).
    """
    if ordered:
        for gt in gts:
            if pred == gt:
                return 1, 1
            if _nows(pred) in _nows(gt) or _nows(gt) in _nows(pred):
                return 0, 1
        return 0, 0
    if pred in gts:
        return 1, 1
    if any(_nows(pred) in _nows(gt) or _nows(gt) in _nows(pred) for gt in gts):
        return 0, 1
    return 0, 0


def exact_match(pred: str, gts: Sequence[str], clean: bool = True) -> float:
    """EM@1: 1.0 if the (cleaned) prediction equals one (cleaned) reference. clean=False is ScanQA's raw rule."""
    if clean:
        return float(clean_answer(pred) in [clean_answer(g) for g in gts])
    return float(pred in gts)


def refined_exact_match(pred: str, gts: Sequence[str], clean: bool = True, ordered: bool = False) -> float:
    """Refined EM (LLaVA-3D; ordered=True gives LEO's): exact match, or either string contains the other
    once all whitespace is removed. Note an empty prediction scores 1 (the empty string is in everything)."""
    p = clean_answer(pred) if clean else pred
    g = [clean_answer(x) for x in gts] if clean else list(gts)
    return float(answer_match(p, g, ordered=ordered)[1])


def qa_scores(
    predictions: Mapping[str, str],
    answers: Mapping[str, Sequence[str]],
    question_types: Mapping[str, str] | None = None,
) -> dict:
    """EM@1 and refined EM over a question set (ScanQA / SQA3D), with per-question-type EM when types are given.

    Returns {"EM@1": cleaned EM (LLaVA-3D / LEO cleaning; SQA3D's reported EM), "EM@1_raw": ScanQA's official
    raw string rule, "refined_EM@1": LLaVA-3D refined EM, "EM@1_leo" / "refined_EM@1_leo": LEO's ordered rule,
    "n": count, "per_type": {type: {same keys + "n"}} (only with question_types), "per_item": {id: {same keys}}}.
    Every id in `answers` must have a prediction; extra predictions are ignored (the caller counts them).
    """
    missing = [k for k in answers if k not in predictions]
    if missing:
        raise DataError(f"{len(missing)} question(s) have no prediction (e.g. {missing[0]!r})")
    if not answers:
        raise DataError("no questions to score")
    if question_types is not None:
        untyped = [k for k in answers if k not in question_types]
        if untyped:
            raise DataError(f"{len(untyped)} question(s) have no question type (e.g. {untyped[0]!r})")
    per_item: dict[str, dict[str, float]] = {}
    for qid, gts in answers.items():
        if isinstance(gts, str) or len(gts) == 0:
            raise DataError(f"question {qid!r}: answers must be a non-empty list of strings")
        pred = predictions[qid]
        if not isinstance(pred, str):
            raise DataError(f"question {qid!r}: prediction must be a string, got {type(pred).__name__}")
        cp, cg = clean_answer(pred), [clean_answer(g) for g in gts]
        em, refined = answer_match(cp, cg)
        em_leo, refined_leo = answer_match(cp, cg, ordered=True)
        per_item[qid] = {"EM@1": float(em), "EM@1_raw": float(pred in gts), "refined_EM@1": float(refined),
                         "EM@1_leo": float(em_leo), "refined_EM@1_leo": float(refined_leo)}
    out: dict = _means(per_item.values())
    if question_types is not None:
        groups: dict[str, list[dict[str, float]]] = {}
        for qid, item in per_item.items():
            groups.setdefault(str(question_types[qid]), []).append(item)
        out["per_type"] = {t: _means(items) for t, items in sorted(groups.items())}
    out["per_item"] = per_item
    return out


def _means(items: object) -> dict:
    rows = list(items)  # type: ignore[call-overload]
    keys = ("EM@1", "EM@1_raw", "refined_EM@1", "EM@1_leo", "refined_EM@1_leo")
    return {**{k: sum(r[k] for r in rows) / len(rows) for k in keys}, "n": len(rows)}

"""Captioning / open-ended QA n-gram metrics equal to pycocoevalcap 1.2 (BLEU-1..4, ROUGE-L, CIDEr-D) and METEOR.

Reference: METRICS.md sec. 1 (pycocoevalcap 1.2 as called by ScanQA `scripts/score.py`, LLaVA-3D, Video-3D-LLM,
Scan2Cap). BLEU, ROUGE-L and CIDEr-D are re-implemented here in pure Python from their definitions. METEOR comes
from the pure-Python `vidllm_core.metrics.meteor` by default (close to, not equal to, the jar: docs/metrics.md), or
from METEOR 1.5 (Java) through `pycocoevalcap` with `meteor_backend="java"`.
"""

from __future__ import annotations

import importlib.util
import math
import shutil
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from vidllm_core.errors import ConfigError, DataError
from vidllm_core.metrics.meteor import meteor
from vidllm_core.metrics.qa import clean_answer
from vidllm_core.metrics.tokenize_ptb import ptb_tokenize

__all__ = [
    "PIPELINES",
    "bleu",
    "caption_scores",
    "cider_d",
    "meteor_available",
    "preprocess_captions",
    "rouge_l",
]

NGram = tuple[str, ...]


# --------------------------------------------------------------------------------------------- pre-processing
def _one_line(s: str) -> str:
    """Newlines -> spaces, as the reference run did for every pipeline (METEOR's line protocol needs it; it only
    changes ROUGE-L, whose tokens are `split(' ')`)."""
    return s.replace("\n", " ")


def _coco(cand: str, refs: Sequence[str]) -> tuple[str, list[str]]:
    return ptb_tokenize(cand), [ptb_tokenize(r) for r in refs]


def _scan2cap(cand: str, refs: Sequence[str]) -> tuple[str, list[str]]:
    def wrap(s: str) -> str:
        return "sos " + _one_line(s).replace(".", " . ").replace(",", " , ").lower() + " eos"

    return wrap(cand), [wrap(r) for r in refs]


def _raw(cand: str, refs: Sequence[str]) -> tuple[str, list[str]]:
    return _one_line(cand).rstrip("."), [_one_line(r) for r in refs]


def _llava3d(cand: str, refs: Sequence[str]) -> tuple[str, list[str]]:
    return ptb_tokenize(clean_answer(cand)), [ptb_tokenize(clean_answer(r.replace("\n", " ").strip())) for r in refs]


#: name -> (description, function(candidate, references) -> (candidate', references')).
PIPELINES: dict[str, tuple[str, Callable[[str, Sequence[str]], tuple[str, list[str]]]]] = {
    "coco": ("PTB tokenisation + punctuation removal (pycocoevalcap; ScanQA score.py, Scan2Cap-style PTB)", _coco),
    "scan2cap": ("'sos ' + s.replace('.',' . ').replace(',',' , ').lower() + ' eos' (Video-3D-LLM eval_scan2cap)",
                 _scan2cap),
    "raw": ("candidate.rstrip('.'), references as is, no tokeniser (Video-3D-LLM / 3DRS eval_scanqa)", _raw),
    "llava3d": ("clean_answer() on both sides, refs newline->space + strip, then PTB (LLaVA-3D scanqa_evaluator)",
                _llava3d),
}
_ALIASES = {"ptb": "coco", "scan2cap_sos_eos": "scan2cap", "scanqa_raw_rstrip": "raw", "llava3d_clean_ptb": "llava3d"}


def _pipeline(name: str) -> Callable[[str, Sequence[str]], tuple[str, list[str]]]:
    key = _ALIASES.get(name, name)
    if key not in PIPELINES:
        raise ConfigError(f"unknown caption pipeline {name!r}; choose one of {', '.join(PIPELINES)}")
    return PIPELINES[key][1]


def preprocess_captions(
    candidates: Mapping[str, str], references: Mapping[str, Sequence[str]], pipeline: str = "coco"
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Check ids and apply a pre-processing pipeline; returns (candidates, references) in the references' order."""
    fn = _pipeline(pipeline)
    missing = [k for k in references if k not in candidates]
    extra = [k for k in candidates if k not in references]
    if missing or extra:
        raise DataError(
            f"candidate and reference ids differ: {len(missing)} without a candidate"
            f"{' (e.g. ' + repr(missing[0]) + ')' if missing else ''}, {len(extra)} without references"
            f"{' (e.g. ' + repr(extra[0]) + ')' if extra else ''}"
        )
    if not references:
        raise DataError("no items to score")
    cands: dict[str, str] = {}
    refs: dict[str, list[str]] = {}
    for key, ref_list in references.items():
        if isinstance(ref_list, str) or len(ref_list) == 0:
            raise DataError(f"item {key!r}: references must be a non-empty list of strings")
        cand = candidates[key]
        if not isinstance(cand, str) or not all(isinstance(r, str) for r in ref_list):
            raise DataError(f"item {key!r}: candidate and references must be strings")
        cands[key], refs[key] = fn(cand, ref_list)
    return cands, refs


# ---------------------------------------------------------------------------------------------------- BLEU
def _ngram_counts(words: Sequence[str], n: int) -> dict[NGram, int]:
    counts: dict[NGram, int] = defaultdict(int)
    for k in range(1, n + 1):
        for i in range(len(words) - k + 1):
            counts[tuple(words[i:i + k])] += 1
    return counts


def bleu(cands: Mapping[str, str], refs: Mapping[str, Sequence[str]], n: int = 4) -> tuple[list[float], dict[str, list[float]]]:
    """pycocoevalcap `Bleu(n)` with option 'closest': (corpus [B1..Bn], {id: per-item [B1..Bn]}).

    Inputs are already pre-processed strings; tokens are `str.split()`.
    """
    tiny, small = 1e-15, 1e-9
    total_guess, total_correct = [0] * n, [0] * n
    total_test = total_ref = 0
    per_item: dict[str, list[float]] = {}
    for key, ref_list in refs.items():
        ref_lens: list[int] = []
        max_counts: dict[NGram, int] = {}
        for ref in ref_list:
            words = ref.split()
            ref_lens.append(len(words))
            for gram, c in _ngram_counts(words, n).items():
                max_counts[gram] = max(max_counts.get(gram, 0), c)
        test_words = cands[key].split()
        test_len = len(test_words)
        guess = [max(0, test_len - k + 1) for k in range(1, n + 1)]
        correct = [0] * n
        for gram, c in _ngram_counts(test_words, n).items():
            correct[len(gram) - 1] += min(max_counts.get(gram, 0), c)
        ref_len = min((abs(rl - test_len), rl) for rl in ref_lens)[1]  # closest, ties -> shorter
        total_test += test_len
        total_ref += ref_len
        scores, prod = [], 1.0
        for k in range(n):
            total_guess[k] += guess[k]
            total_correct[k] += correct[k]
            prod *= (float(correct[k]) + tiny) / (float(guess[k]) + small)
            scores.append(prod ** (1.0 / (k + 1)))
        ratio = (test_len + tiny) / (ref_len + small)
        if ratio < 1:
            scores = [s * math.exp(1 - 1 / ratio) for s in scores]
        per_item[key] = scores
    corpus, prod = [], 1.0
    for k in range(n):
        prod *= float(total_correct[k] + tiny) / (total_guess[k] + small)
        corpus.append(prod ** (1.0 / (k + 1)))
    ratio = (total_test + tiny) / (total_ref + small)
    if ratio < 1:
        corpus = [s * math.exp(1 - 1 / ratio) for s in corpus]
    return corpus, per_item


# ------------------------------------------------------------------------------------------------- ROUGE-L
def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, start=1):
            cur[j] = prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1])
        prev = cur
    return prev[-1]


def rouge_l(cands: Mapping[str, str], refs: Mapping[str, Sequence[str]], beta: float = 1.2) -> tuple[float, dict[str, float]]:
    """pycocoevalcap `Rouge`: tokens `s.split(' ')`; max precision and max recall taken independently over refs."""
    per_item: dict[str, float] = {}
    for key, ref_list in refs.items():
        cand = cands[key].split(" ")
        precs, recs = [], []
        for ref in ref_list:
            ref_tokens = ref.split(" ")
            lcs = _lcs(ref_tokens, cand)
            precs.append(lcs / float(len(cand)))
            recs.append(lcs / float(len(ref_tokens)))
        p, r = max(precs), max(recs)
        per_item[key] = ((1 + beta**2) * p * r) / float(r + beta**2 * p) if p != 0 and r != 0 else 0.0
    return _mean(per_item.values()), per_item


# ------------------------------------------------------------------------------------------------- CIDEr-D
def cider_d(
    cands: Mapping[str, str], refs: Mapping[str, Sequence[str]], n: int = 4, sigma: float = 6.0
) -> tuple[float, dict[str, float]]:
    """pycocoevalcap `Cider` (CIDEr-D): TF-IDF with document frequencies over THIS corpus' references, x10."""
    test_counts = {k: _ngram_counts(cands[k].split(), n) for k in refs}
    ref_counts = {k: [_ngram_counts(r.split(), n) for r in v] for k, v in refs.items()}
    doc_freq: dict[NGram, int] = defaultdict(int)
    for counts_list in ref_counts.values():
        for gram in {g for counts in counts_list for g in counts}:
            doc_freq[gram] += 1
    log_n = math.log(float(len(refs)))

    def to_vec(counts: Mapping[NGram, int]) -> tuple[list[dict[NGram, float]], list[float], int]:
        vec: list[dict[NGram, float]] = [{} for _ in range(n)]
        norm = [0.0] * n
        length = 0
        for gram, tf in counts.items():
            k = len(gram) - 1
            v = float(tf) * (log_n - math.log(max(1.0, doc_freq.get(gram, 0))))
            vec[k][gram] = v
            norm[k] += v * v
            if k == 1:  # upstream counts *bigram* frequencies as the "length"
                length += tf
        return vec, [math.sqrt(x) for x in norm], length

    per_item: dict[str, float] = {}
    for key in refs:
        vec, norm, length = to_vec(test_counts[key])
        total = [0.0] * n
        for rc in ref_counts[key]:
            vec_r, norm_r, length_r = to_vec(rc)
            delta = float(length - length_r)
            penalty = math.e ** (-(delta**2) / (2 * sigma**2))
            for k in range(n):
                val = 0.0
                for gram, v in vec[k].items():
                    vr = vec_r[k].get(gram, 0.0)
                    val += min(v, vr) * vr
                if norm[k] != 0 and norm_r[k] != 0:
                    val /= norm[k] * norm_r[k]
                total[k] += val * penalty
        per_item[key] = sum(total) / n / len(refs[key]) * 10.0
    return _mean(per_item.values()), per_item


# -------------------------------------------------------------------------------------------------- METEOR
def meteor_available() -> bool:
    """True when the optional `pycocoevalcap` package (METEOR 1.5 jar) and a `java` executable are present."""
    return importlib.util.find_spec("pycocoevalcap") is not None and shutil.which("java") is not None


def _meteor(cands: Mapping[str, str], refs: Mapping[str, Sequence[str]]) -> tuple[float, dict[str, float]]:
    from pycocoevalcap.meteor.meteor import Meteor  # optional extra: pip install vidllm[coco]

    gts = {k: [_one_line(r) for r in v] for k, v in refs.items()}  # the jar's stdio protocol is line based
    res = {k: [_one_line(cands[k])] for k in refs}
    scorer = Meteor()
    try:
        corpus, scores = scorer.compute_score(gts, res)
    finally:
        close = getattr(scorer, "close", None)
        if callable(close):
            close()
    return float(corpus), {k: float(s) for k, s in zip(refs, scores)}


# -------------------------------------------------------------------------------------------------- public
def caption_scores(
    candidates: Mapping[str, str],
    references: Mapping[str, Sequence[str]],
    pipeline: str = "coco",
    with_meteor: bool | None = None,
    meteor_backend: str = "python",
) -> dict:
    """Corpus and per-item Bleu_1..4, ROUGE_L, CIDEr (+ METEOR) exactly as pycocoevalcap 1.2 computes them.

    candidates: {id: generated text}; references: {id: [reference texts]} with the same ids.
    pipeline: "coco" (PTB, default), "scan2cap" (sos/eos), "raw" (rstrip('.')), "llava3d" (clean_answer + PTB).
    with_meteor: None or True = include METEOR, False = skip it. meteor_backend: "python" (pure Python, no Java;
    close to the jar, see docs/metrics.md) or "java" (METEOR 1.5 through pycocoevalcap: needs Java + the extra).
    Returns {"Bleu_1".."Bleu_4", "ROUGE_L", "CIDEr", ["METEOR"], "per_item": {id: {same keys}}}; fractions, not x100.
    Corpus BLEU pools n-gram counts and corpus METEOR aggregates the jar's statistics (neither is a per-item mean);
    ROUGE_L and CIDEr are per-item means; CIDEr's IDF depends on the whole set of items passed in.
    """
    if meteor_backend not in ("python", "java"):
        raise ConfigError(f"unknown METEOR backend {meteor_backend!r} (choose python or java)")
    use_meteor = with_meteor is not False
    if use_meteor and meteor_backend == "java" and not meteor_available():
        raise ConfigError("the Java METEOR needs Java and the optional extra: pip install 'vidllm[coco]'")
    cands, refs = preprocess_captions(candidates, references, pipeline)
    bleu_corpus, bleu_items = bleu(cands, refs)
    rouge_corpus, rouge_items = rouge_l(cands, refs)
    cider_corpus, cider_items = cider_d(cands, refs)
    out: dict = {f"Bleu_{k + 1}": bleu_corpus[k] for k in range(4)}
    out["ROUGE_L"] = rouge_corpus
    out["CIDEr"] = cider_corpus
    per_item: dict[str, dict[str, float]] = {
        key: {**{f"Bleu_{k + 1}": bleu_items[key][k] for k in range(4)},
              "ROUGE_L": rouge_items[key], "CIDEr": cider_items[key]}
        for key in refs
    }
    if use_meteor:
        meteor_corpus, meteor_items = _meteor(cands, refs) if meteor_backend == "java" else meteor(cands, refs)
        out["METEOR"] = meteor_corpus
        for key in refs:
            per_item[key]["METEOR"] = meteor_items[key]
    out["per_item"] = per_item
    return out


def _mean(values: object) -> float:
    return float(np.mean(np.asarray(list(values), dtype=np.float64)))  # type: ignore[call-overload]

"""Caption metrics: PTB tokenisation and BLEU/ROUGE-L/CIDEr against pycocoevalcap 1.2 (caption_fixture_a.json)."""

from __future__ import annotations

import math

import pytest

from vidllm_core.errors import ConfigError, DataError
from vidllm_core.metrics import caption_scores, meteor_available, ptb_tokenize

KEYS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "CIDEr")
TOL = 1e-9  # METRICS.md suggests ~1e-9; the issue requires 1e-6


@pytest.fixture(scope="module")
def fixture_a(load_json):
    return load_json("caption_fixture_a.json")


def _inputs(fx):
    return ({it["id"]: it["candidate"] for it in fx["items"]}, {it["id"]: it["references"] for it in fx["items"]})


def test_ptb_tokenizer_matches_java_output_on_every_string(fixture_a):
    pairs = [(s, p) for it in fixture_a["items"]
             for s, p in zip([it["candidate"], *it["references"]], [it["ptb_candidate"], *it["ptb_references"]])]
    assert len(pairs) > 300
    wrong = [(s, ptb_tokenize(s), p) for s, p in pairs if ptb_tokenize(s) != p]
    assert wrong == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('the "nightstand" (near the desk) is beige.', "the nightstand -lrb- near the desk -rrb- is beige"),
        ("THIS IS A BEIGE NIGHTSTAND!!!", "this is a beige nightstand !!!"),
        ("it's the nightstand's cover, isn't it?", "it 's the nightstand 's cover is n't it"),
        ("l - shaped and l-shaped", "l shaped and l-shaped"),
        ("about 1.5 meters.", "about 1.5 meters"),
        ("made of plastic..", "made of plastic"),
        ("...", ""),
        ("I can't; cannot", "i ca n't can not"),
    ],
)
def test_ptb_tokenizer_hand_cases(text, expected):
    assert ptb_tokenize(text) == expected


PIPELINES = [("coco", None), ("scan2cap", "scan2cap_sos_eos"), ("raw", "scanqa_raw_rstrip"),
             ("llava3d", "llava3d_clean_ptb")]


@pytest.mark.parametrize(("pipeline", "alt"), PIPELINES)
def test_caption_scores_equal_fixture_corpus_and_per_item(fixture_a, pipeline, alt):
    cands, refs = _inputs(fixture_a)
    got = caption_scores(cands, refs, pipeline=pipeline, with_meteor=False)
    if alt is None:
        corpus = fixture_a["corpus_expected"]
        per_item = {it["id"]: it["expected"] for it in fixture_a["items"]}
    else:
        corpus = fixture_a["alt_pipelines"][alt]["corpus"]
        per_item = fixture_a["alt_pipelines"][alt]["per_item"]
    assert "METEOR" not in got
    for key in KEYS:
        assert got[key] == pytest.approx(corpus[key], abs=TOL), key
    assert set(got["per_item"]) == set(per_item)
    for item_id, expected in per_item.items():
        for key in KEYS:
            assert got["per_item"][item_id][key] == pytest.approx(expected[key], abs=TOL), (item_id, key)


def test_pipeline_aliases_give_same_numbers(fixture_a):
    cands, refs = _inputs(fixture_a)
    a = caption_scores(cands, refs, pipeline="scan2cap", with_meteor=False)
    b = caption_scores(cands, refs, pipeline="scan2cap_sos_eos", with_meteor=False)
    assert a["CIDEr"] == b["CIDEr"] and a["Bleu_4"] == b["Bleu_4"]


def test_corpus_bleu_is_not_mean_of_per_item(fixture_a):
    cands, refs = _inputs(fixture_a)
    got = caption_scores(cands, refs, with_meteor=False)
    mean_b4 = sum(v["Bleu_4"] for v in got["per_item"].values()) / len(got["per_item"])
    assert mean_b4 == pytest.approx(fixture_a["mean_of_per_item"]["Bleu_4"], abs=TOL)
    assert abs(mean_b4 - got["Bleu_4"]) > 0.1


def test_hand_computed_two_items():
    # item x: identical 4-word caption; item y: 1 of 2 unigrams right, no bigram.
    got = caption_scores({"x": "a red chair here", "y": "blue lamp"},
                         {"x": ["a red chair here"], "y": ["green lamp"]}, with_meteor=False)
    # corpus BLEU-1: correct 4+1 over guesses 4+2. testlen == reflen == 6, yet upstream's smoothed ratio
    # (6 + 1e-15) / (6 + 1e-9) is just below 1, so a brevity penalty of exp(1 - 1/ratio) ~ 1 - 1.7e-10 applies.
    bp = math.exp(1 - (6 + 1e-9) / (6 + 1e-15))
    assert got["Bleu_1"] == pytest.approx((5 + 1e-15) / (6 + 1e-9) * bp, abs=1e-13)
    # BLEU-2: bigrams 3+0 correct of 3+1
    assert got["Bleu_2"] == pytest.approx(math.sqrt(5 / 6 * 3 / 4), abs=1e-9)
    # ROUGE-L: x = 1; y: LCS 1, P = R = 1/2 -> F = 1/2
    assert got["per_item"]["x"]["ROUGE_L"] == pytest.approx(1.0)
    assert got["per_item"]["y"]["ROUGE_L"] == pytest.approx(0.5)
    assert got["ROUGE_L"] == pytest.approx(0.75)
    # CIDEr for y: only "lamp" shared, and it occurs in both items' references? no: df(lamp)=1, N=2 ->
    # idf = log 2 for every n-gram, unigram cosine = 1/2, higher orders 0 -> 10 * (1/2) / 4
    assert got["per_item"]["y"]["CIDEr"] == pytest.approx(10 * 0.5 / 4, abs=1e-12)
    # x: identical, all n-gram orders non-empty with idf log 2 -> 10
    assert got["per_item"]["x"]["CIDEr"] == pytest.approx(10.0, abs=1e-12)


def test_bad_input_is_a_clear_error():
    with pytest.raises(DataError, match="ids differ"):
        caption_scores({"a": "x"}, {"b": ["x"]}, with_meteor=False)
    with pytest.raises(DataError, match="non-empty list"):
        caption_scores({"a": "x"}, {"a": []}, with_meteor=False)
    with pytest.raises(ConfigError, match="unknown caption pipeline"):
        caption_scores({"a": "x"}, {"a": ["x"]}, pipeline="nope", with_meteor=False)


def test_java_meteor_requested_without_java_or_extra_is_a_config_error():
    if meteor_available():
        pytest.skip("pycocoevalcap and java are installed here")
    with pytest.raises(ConfigError, match="vidllm\\[coco\\]"):
        caption_scores({"a": "x"}, {"a": ["x"]}, meteor_backend="java")
    with pytest.raises(ConfigError, match="unknown METEOR backend"):
        caption_scores({"a": "x"}, {"a": ["x"]}, meteor_backend="perl")
    assert caption_scores({"a": "x"}, {"a": ["x"]})["METEOR"] == pytest.approx(1.0)  # pure Python by default


@pytest.mark.skipif(not meteor_available(), reason="METEOR needs pycocoevalcap (pip install vidllm[coco]) and java")
def test_meteor_equals_fixture_when_available(fixture_a):
    cands, refs = _inputs(fixture_a)
    got = caption_scores(cands, refs, meteor_backend="java")
    assert got["METEOR"] == pytest.approx(fixture_a["corpus_expected"]["METEOR"], abs=1e-6)
    for it in fixture_a["items"]:
        assert got["per_item"][it["id"]]["METEOR"] == pytest.approx(it["expected"]["METEOR"], abs=1e-6)

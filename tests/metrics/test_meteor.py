"""Pure-Python METEOR against the METEOR 1.5 jar's values in caption_fixture_a.json (pycocoevalcap 1.2, Java 17)."""

from __future__ import annotations

import numpy as np
import pytest

from vidllm_core.metrics import caption_scores
from vidllm_core.metrics.meteor import MeteorParams, meteor, segment_stats

# (library pipeline, fixture entry, largest |corpus difference| allowed): the measured differences are in
# docs/metrics.md; the bounds sit just above them, so a scoring change that moves any pipeline fails here.
PIPELINES = [("coco", None, 0.025), ("scan2cap", "scan2cap_sos_eos", 0.02), ("raw", "scanqa_raw_rstrip", 0.012),
             ("llava3d", "llava3d_clean_ptb", 0.03)]


@pytest.fixture(scope="module")
def fixture_a(load_json):
    return load_json("caption_fixture_a.json")


@pytest.mark.parametrize(("pipeline", "alt", "corpus_tol"), PIPELINES)
def test_python_meteor_is_close_to_the_jar(fixture_a, pipeline, alt, corpus_tol):
    cands = {it["id"]: it["candidate"] for it in fixture_a["items"]}
    refs = {it["id"]: it["references"] for it in fixture_a["items"]}
    got = caption_scores(cands, refs, pipeline=pipeline)
    if alt is None:
        corpus = fixture_a["corpus_expected"]["METEOR"]
        per_item = {it["id"]: it["expected"]["METEOR"] for it in fixture_a["items"]}
    else:
        corpus = fixture_a["alt_pipelines"][alt]["corpus"]["METEOR"]
        per_item = {k: v["METEOR"] for k, v in fixture_a["alt_pipelines"][alt]["per_item"].items()}
    ours = np.array([got["per_item"][k]["METEOR"] for k in per_item])
    jar = np.array(list(per_item.values()))
    diff = np.abs(ours - jar)
    print(f"\n{pipeline}: corpus {got['METEOR']:.4f} vs jar {corpus:.4f}; per-item mean |diff| {diff.mean():.4f}, "
          f"median {np.median(diff):.4f}, correlation {np.corrcoef(ours, jar)[0, 1]:.4f}")
    assert abs(got["METEOR"] - corpus) <= corpus_tol
    assert diff.mean() <= 0.03 and np.median(diff) <= 0.015
    assert np.corrcoef(ours, jar)[0, 1] >= 0.95


def test_identical_sentences_score_one_and_disjoint_ones_zero():
    corpus, per_item = meteor({"a": "the red chair", "b": "a lamp"}, {"a": ["the red chair"], "b": ["two beds"]})
    assert per_item == {"a": pytest.approx(1.0), "b": 0.0}
    assert 0.0 < corpus < 1.0


def test_hand_computed_segment():
    # test "the chairs stand here" vs ref "the chair is here": exact the(function), here(function); stem chair(s)
    # (content); 3 matches in 2 chunks (the chair | here).
    st = segment_stats("the chairs stand here", "the chair is here")
    assert (st.matches, st.chunks) == (3, 2)
    assert st.test_content_matches == [0, 1] and st.test_function_matches == [2, 0]
    p = MeteorParams()
    test_len = p.delta * 2 + (1 - p.delta) * 2          # content: chairs, stand; function: the, here
    ref_len = p.delta * 1 + (1 - p.delta) * 3           # content: chair; function: the, is, here
    matched = p.delta * 0.6 + (1 - p.delta) * 2          # one stem content match + two exact function matches
    prec, rec = matched / test_len, matched / ref_len
    f_mean = 1 / ((1 - p.alpha) / prec + p.alpha / rec)
    assert st.score(p) == pytest.approx(f_mean * (1 - p.gamma * (2 / 3) ** p.beta))


def test_best_reference_wins_and_corpus_pools_statistics():
    corpus, per_item = meteor({"a": "a green lamp"}, {"a": ["a chair", "a green lamp"]})
    assert per_item["a"] == pytest.approx(1.0) and corpus == pytest.approx(1.0)

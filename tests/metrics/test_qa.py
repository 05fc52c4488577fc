"""QA exact match against the LLaVA-3D / LEO / ScanQA evaluators (em_fixture.json)."""

from __future__ import annotations

import pytest

from vidllm_core.errors import DataError
from vidllm_core.metrics import answer_match, clean_answer, exact_match, qa_scores, refined_exact_match


@pytest.fixture(scope="module")
def em(load_json):
    return load_json("em_fixture.json")


def test_clean_answer_equals_upstream_outputs(em):
    for it in em["items"]:
        assert clean_answer(it["candidate"]) == it["clean_candidate"], it["id"]
        assert [clean_answer(r) for r in it["references"]] == it["clean_references"], it["id"]


def test_per_item_em_variants_equal_fixture(em):
    for it in em["items"]:
        c, r = it["candidate"], it["references"]
        assert exact_match(c, r, clean=False) == it["em_raw"], it["id"]
        assert exact_match(c, r) == it["em"], it["id"]
        assert refined_exact_match(c, r) == it["refined_em"], it["id"]
        assert answer_match(clean_answer(c), [clean_answer(x) for x in r], ordered=True) == (
            it["em_leo"], it["refined_em_leo"]), it["id"]
        if it["em_sqa3d_single_ref"] is not None:
            assert float(clean_answer(c) == clean_answer(r[0])) == it["em_sqa3d_single_ref"], it["id"]


def test_qa_scores_means_equal_fixture(em):
    preds = {it["id"]: it["candidate"] for it in em["items"]}
    answers = {it["id"]: it["references"] for it in em["items"]}
    got = qa_scores(preds, answers)
    means = em["means"]
    assert got["n"] == means["n_items"] == 79
    assert got["EM@1"] == pytest.approx(means["em"], abs=1e-12)
    assert got["EM@1_raw"] == pytest.approx(means["em_raw"], abs=1e-12)
    assert got["refined_EM@1"] == pytest.approx(means["refined_em"], abs=1e-12)
    assert got["EM@1_leo"] == pytest.approx(means["em_leo"], abs=1e-12)
    assert got["refined_EM@1_leo"] == pytest.approx(means["refined_em_leo"], abs=1e-12)


def test_hand_cases_and_sqa3d_per_type():
    assert clean_answer("The Chair.") == "chair"
    assert clean_answer("brown .") == "brown "  # trimmed before the period is deleted
    assert exact_match("2", ["two"]) == 1.0 and exact_match("2", ["two"], clean=False) == 0.0
    assert refined_exact_match("", ["brown"]) == 1.0  # upstream quirk: '' is a substring of everything
    assert answer_match("brown", ["dark brown", "brown"], ordered=True) == (0, 1)  # LEO stops at the first ref
    preds = {"q1": "Left.", "q2": "right", "q3": "3 chairs", "q4": "no"}
    answers = {"q1": ["left"], "q2": ["left"], "q3": ["three"], "q4": ["no"]}
    types = {"q1": "what", "q2": "what", "q3": "how", "q4": "is"}
    got = qa_scores(preds, answers, types)
    assert got["EM@1"] == 0.5 and got["refined_EM@1"] == 0.75
    assert got["per_type"]["what"] == {"EM@1": 0.5, "EM@1_raw": 0.0, "refined_EM@1": 0.5, "EM@1_leo": 0.5,
                                       "refined_EM@1_leo": 0.5, "n": 2}
    assert got["per_type"]["how"]["EM@1"] == 0.0 and got["per_type"]["how"]["refined_EM@1"] == 1.0
    assert got["per_type"]["is"]["EM@1_raw"] == 1.0


def test_qa_bad_input():
    with pytest.raises(DataError, match="no prediction"):
        qa_scores({}, {"q": ["a"]})
    with pytest.raises(DataError, match="question type"):
        qa_scores({"q": "a"}, {"q": ["a"]}, {})
    with pytest.raises(DataError, match="non-empty list"):
        qa_scores({"q": "a"}, {"q": "a"})

"""Task prompts: phrasing, coordinates, truncation, empty input, chat templates."""

from __future__ import annotations

import copy

import pytest

from vidllm_core.errors import DataError
from vidllm_core.language import prompts as P


def test_qa_prompts() -> None:
    p = P.scanqa_prompt("  How many   chairs? ", "two")
    assert p.task == "scanqa" and not p.truncated
    assert p.prompt == "<scene>\nHow many chairs? Answer the question using a single word or phrase."
    assert p.target == "two"
    s = P.sqa3d_prompt("I am facing the bed.", "What is on my left?")
    assert s.prompt == ("<scene>\nI am facing the bed. What is on my left? "
                        "Answer the question using a single word or phrase.") and s.target is None


def test_caption_prompts_use_two_decimals() -> None:
    b = P.scan2cap_prompt(box=[1.254, -0.5, 2, 0.6, 0.61, 0.9], caption="a chair")
    assert b.prompt == ("<scene>\nThe related object is located at [1.25, -0.50, 2.00] with size "
                        "[0.60, 0.61, 0.90]. Describe the object in detail.")
    pt = P.scan2cap_prompt(point=[-0.001, 3.14159, -2.5])
    assert "[0.00, 3.14, -2.50]" in pt.prompt
    assert P.scene_caption_prompt().prompt == "<scene>\nDescribe the scene in detail."
    with pytest.raises(DataError):
        P.scan2cap_prompt(box=[0, 0, 0, 1, -1, 1])
    with pytest.raises(DataError):
        P.scan2cap_prompt(point=[0, float("nan"), 0])
    with pytest.raises(DataError):
        P.scan2cap_prompt()


def test_grounding_prompts() -> None:
    g = P.grounding_prompt("the black chair by the window")
    assert g.task == "scanrefer" and g.target == "<ground>"
    assert g.prompt == ("<scene>\nIdentify the object according to the following description.\n"
                        "the black chair by the window")
    m = P.grounding_prompt("chairs", multiple=True)
    assert m.task == "multi3drefer" and m.prompt.endswith(P.MULTI_TARGET_NOTE)


def test_empty_and_reserved_text() -> None:
    for bad in ("", "   \n\t", "<scene>", "<ground> <scene>"):
        with pytest.raises(DataError, match="empty"):
            P.scanqa_prompt(bad)
    assert P.scanqa_prompt("what is <scene> here?").prompt.count("<scene>") == 1


def test_truncation_flag(tokenizer) -> None:  # noqa: ANN001
    long_q = "how many chairs " * 7000  # ~110 KB
    p = P.scanqa_prompt(long_q, tokenizer=tokenizer, max_question_tokens=32)
    assert p.truncated
    q = p.prompt.split("\n", 1)[1].removesuffix(" " + P.QA_SUFFIX)
    assert len(tokenizer(q, add_special_tokens=False)["input_ids"]) <= 33
    assert not P.scanqa_prompt("how many chairs", tokenizer=tokenizer, max_question_tokens=32).truncated
    words = P.scanqa_prompt("a b c d e", max_question_tokens=3)
    assert words.truncated and words.prompt.startswith("<scene>\na b c ")


def test_chat_text_plain_and_template(tokenizer) -> None:  # noqa: ANN001
    assert P.chat_text(tokenizer, "<scene>\nhi") == "<bos>USER: <scene>\nhi\nASSISTANT: "
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = ("{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}[assistant]{% endif %}")
    assert P.chat_text(tok, "q", system="sys") == "[system]sys\n[user]q\n[assistant]"


def test_check_in_scene() -> None:
    P.check_in_scene([1, 1, 1], [0, 0, 0], [2, 2, 2])
    P.check_in_scene([2.4, 1, 1], [0, 0, 0], [2, 2, 2], margin=0.5)
    with pytest.raises(DataError, match="outside"):
        P.check_in_scene([9, 1, 1], [0, 0, 0], [2, 2, 2])

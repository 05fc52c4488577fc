"""Batched greedy answers on one scene (issue 16 item 4): `answer_prompts` generates greedy answers several prompts at
a time with left padding; they must be exactly the answers generated one prompt at a time. The shipped demo model
(trained: answers of one to a few words, so the rows of a batch stop at different steps) on examples/room.mp4, and
random tiny Qwen2 / Llama LLMs (long random answers)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vidllm_core.language import prompts as P
from vidllm_core.language.fusion import SceneLanguageModel
from vidllm_core.models.vidllm import VidLLM
from vidllm_core.pipelines.language import answer_prompts, ask

ROOM = Path(__file__).resolve().parents[2] / "examples" / "room.mp4"
QUESTIONS = ["what is on the table?", "what color is the sofa?", "how many chairs are there in the room?",
             "where is the lamp?", "what is next to the bed near the window on the left side of the room?",
             "is there a tv?", "what is the chair made of?"]


@pytest.fixture(scope="module")
def model() -> VidLLM:
    from vidllm_core.assets import default_model_dir

    return VidLLM.from_pretrained(default_model_dir())


@pytest.fixture(scope="module")
def encoding(model):  # noqa: ANN001, ANN201 - SceneEncoding
    from vidllm_core.pipelines.vision_pass import run_vision_pass

    return run_vision_pass(model, ROOM, tokens=True, cache=None).encoding


def _prompts(model: VidLLM) -> list[P.TaskPrompt]:
    tok = model.language.tokenizer
    return [P.scanqa_prompt(q, tokenizer=tok) for q in QUESTIONS] + \
        [P.sqa3d_prompt("I am standing by the bed facing the window.", q, tokenizer=tok) for q in QUESTIONS[:3]]


@pytest.mark.parametrize("batch_size", [2, 4, 16])
def test_batched_greedy_answers_equal_one_at_a_time(model, encoding, generate_calls,  # noqa: ANN001
                                                    batch_size: int) -> None:
    prompts = _prompts(model)
    one = answer_prompts(model, encoding, prompts, max_new_tokens=12, batch_size=1)
    assert generate_calls == [1] * len(prompts)
    generate_calls.clear()
    many = answer_prompts(model, encoding, prompts, max_new_tokens=12, batch_size=batch_size)
    assert many == one
    assert len(generate_calls) == -(-len(prompts) // batch_size) and max(generate_calls) == min(batch_size,
                                                                                                len(prompts))
    assert len({len(a.split()) for a in one}) > 1   # answers of different lengths: rows stop at different steps


@pytest.mark.parametrize("kind", ["qwen2", "llama"])
def test_random_llms_batched_equal_one_at_a_time(make_model, token_dim: int, kind: str) -> None:  # noqa: ANN001
    """Random tiny LLMs never stop early: every row runs all `max_new_tokens`, with different prompt lengths and a
    different number of real 3D tokens per scene (the padding of the scene slot)."""
    lm = make_model(kind)
    gen = torch.Generator().manual_seed(1)
    tokens, xyz = torch.randn(1, 10, token_dim, generator=gen), torch.randn(1, 10, 3, generator=gen)
    mask = torch.arange(10)[None] < 7
    prompts = [f"<scene>\n{q}" for q in ("How many chairs are in the room?", "two?",
                                          "What color is the table next to the window? Describe the scene.")]
    one = [lm.generate(tokens, xyz, mask, [p], max_new_tokens=12)[0] for p in prompts]
    b = len(prompts)
    shared: list = []
    real = SceneLanguageModel._shared_prefix_inputs
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SceneLanguageModel, "_shared_prefix_inputs", lambda self, batch: shared.append(
            real(self, batch)) or shared[-1])
        many = lm.generate(tokens.expand(b, -1, -1), xyz.expand(b, -1, -1), mask.expand(b, -1), prompts,
                           max_new_tokens=12)
    assert many == one and all(one)
    cache = shared[0]["cache"] if "cache" in shared[0] else shared[0]["past_key_values"]
    assert cache.get_seq_length() >= 7   # the prefix shared by the rows: chat start + the 7 real 3D tokens


def test_rows_of_different_scenes_share_no_3d_tokens(make_model, token_dim: int) -> None:  # noqa: ANN001
    """Two scenes in one batch: only their common chat start may be shared, the answers stay one-at-a-time's."""
    lm = make_model("qwen2")
    gen = torch.Generator().manual_seed(2)
    tokens, xyz = torch.randn(2, 6, token_dim, generator=gen), torch.randn(2, 6, 3, generator=gen)
    mask = torch.ones(2, 6, dtype=torch.bool)
    prompts = ["<scene>\nHow many chairs are in the room?"] * 2
    one = [lm.generate(tokens[i:i + 1], xyz[i:i + 1], mask[i:i + 1], [prompts[i]], max_new_tokens=8)[0]
           for i in range(2)]
    assert lm.generate(tokens, xyz, mask, prompts, max_new_tokens=8) == one


def test_sampled_answers_stay_one_prompt_at_a_time(model, encoding, generate_calls) -> None:  # noqa: ANN001
    """With temperature > 0 each answer comes from its own seeded generation, independent of the others."""
    prompts = _prompts(model)[:3]
    together = answer_prompts(model, encoding, prompts, max_new_tokens=8, temperature=1.0, seed=3)
    assert generate_calls == [1, 1, 1]
    alone = answer_prompts(model, encoding, prompts[1:2], max_new_tokens=8, temperature=1.0, seed=3)
    assert alone == together[1:2]


def test_ask_batches_its_questions(model, encoding, generate_calls) -> None:  # noqa: ANN001
    answers = ask(model, encoding, QUESTIONS, max_new_tokens=8)
    assert generate_calls == [len(QUESTIONS)]
    with torch.no_grad():
        single = [ask(model, encoding, [q], max_new_tokens=8)[0].answer for q in QUESTIONS]
    assert [a.answer for a in answers] == single


def test_bad_batch_size_is_refused(model, encoding) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="batch_size"):
        answer_prompts(model, encoding, _prompts(model)[:1], batch_size=0)

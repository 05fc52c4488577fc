"""Fixtures for the language tests: a byte-level BPE tokenizer built offline and tiny random Qwen2 / Llama LLMs."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

SENTENCES = [
    "How many chairs are in the room?",
    "What color is the table next to the window?",
    "There is a brown wooden table near the window.",
    "The chair is to the left of the bed.",
    "Identify the object according to the following description.",
    "Answer the question using a single word or phrase.",
    "Describe the object in detail. Describe the scene in detail.",
    "The related object is located at [1.25, -0.50, 2.00] with size [0.60, 0.60, 0.90].",
    "It is a black office chair with wheels. two. white. yes. no.",
    "USER: ASSISTANT: I am standing by the door facing the sofa.",
]
TOKEN_DIM = 24
LLM_KINDS = ("qwen2", "llama")


@pytest.fixture(scope="session")
def tokenizer():  # noqa: ANN201 - a transformers tokenizer
    from vidllm_core.language.tokenizer import build_tokenizer

    return build_tokenizer(SENTENCES * 4, vocab_size=400)


def _llm_dict(kind: str, vocab_size: int) -> dict:
    return dict(model_type=kind, vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)


@pytest.fixture(scope="session")
def make_model(tokenizer) -> Callable:  # noqa: ANN001
    """make_model(kind, **language_overrides) -> SceneLanguageModel (eval mode, seeded init)."""
    import torch

    from vidllm_core.config import LanguageConfig
    from vidllm_core.language.fusion import SceneLanguageModel

    def make(kind: str, **overrides: object):  # noqa: ANN202
        cfg = LanguageConfig(llm=_llm_dict(kind, len(tokenizer)), **overrides)  # type: ignore[arg-type]
        torch.manual_seed(0)
        return SceneLanguageModel.from_config(cfg, tokenizer, TOKEN_DIM, grounding_dim=32).eval()

    return make


@pytest.fixture(scope="session")
def token_dim() -> int:
    """Width C of the fake 3D patch tokens fed to the tiny models."""
    return TOKEN_DIM

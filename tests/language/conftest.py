"""Fixtures for the language tests: a byte-level BPE tokenizer built offline and tiny random Qwen2 / Llama LLMs."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from vidllm_core.models.vidllm import VidLLM

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


# ---- end-to-end fixtures (tests/language/test_ask_*.py): a tiny VidLLM directory with an LLM, a tiny video ------
@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - Path
    """`vidllm init --preset tiny` equivalent: random tiny Qwen2 + offline tokenizer, saved once per session."""
    from vidllm_core.config import VidLLMConfig
    from vidllm_core.models.build import build_model

    out = tmp_path_factory.mktemp("tiny_model") / "m"
    model, _ = build_model(VidLLMConfig.from_name("tiny"), seed=0)
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_video(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - Path
    """An 8-frame 96x72 H.264 mp4 (a colour ramp with a moving square), written with imageio-ffmpeg."""
    import imageio_ffmpeg
    import numpy as np

    path = tmp_path_factory.mktemp("video") / "room.mp4"
    w, h, n = 96, 72, 8
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=8, codec="libx264", pix_fmt_out="yuv420p",
                                         macro_block_size=8, output_params=["-loglevel", "error"])
    writer.send(None)
    for i in range(n):
        frame = np.zeros((h, w, 3), dtype=np.uint8)
        frame[..., 0] = np.linspace(0, 255, w).astype(np.uint8)[None]
        frame[..., 1] = 20 * i
        frame[20:44, 6 + 6 * i:30 + 6 * i] = 255
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    return path


@pytest.fixture
def count_vision(monkeypatch) -> list[int]:  # noqa: ANN001
    """Counts calls of the vision pass (`VidLLM.encode_scene`)."""
    calls = [0]
    real = VidLLM.encode_scene

    def counted(self, images):  # noqa: ANN001, ANN202
        calls[0] += 1
        return real(self, images)

    monkeypatch.setattr(VidLLM, "encode_scene", counted)
    return calls

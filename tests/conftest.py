"""Fixtures shared by test folders."""

from __future__ import annotations

import pytest


@pytest.fixture
def generate_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Batch size of every `SceneLanguageModel.generate` call."""
    from vidllm_core.language.fusion import SceneLanguageModel

    calls: list[int] = []
    real = SceneLanguageModel.generate

    def counted(self, tokens, xyz, mask, prompts, **kw):  # noqa: ANN001, ANN202
        calls.append(len(prompts))
        return real(self, tokens, xyz, mask, prompts, **kw)

    monkeypatch.setattr(SceneLanguageModel, "generate", counted)
    return calls

"""Stage-2 training pools the scene tokens exactly as inference does (one owner: `VidLLM.scene_tokens`, which reads
the pooling settings from `config.language` through `language.pooling.pool_scene_tokens`)."""

from __future__ import annotations

from dataclasses import replace

import torch

from vidllm_core.models.vidllm import VidLLM
from vidllm_core.training.recipe import Stage2Spec
from vidllm_core.training.stage2 import JointModule


def test_stage2_pools_scene_tokens_like_inference(tiny_model_dir, monkeypatch) -> None:  # noqa: ANN001
    model = VidLLM.from_pretrained(tiny_model_dir).eval()
    budget = 6   # far below the tiny preset's budget: a path that ignored the config would give more tokens
    model.config = replace(model.config, language=replace(model.config.language, token_budget=budget))
    images = torch.rand(3, 3, 56, 56, generator=torch.Generator().manual_seed(0))
    enc = model.encode_scene(images)
    assert 0 < enc.tokens.shape[0] <= budget

    seen: dict[str, torch.Tensor] = {}

    def capture(tokens, xyz, mask, prompts, **kwargs):  # noqa: ANN001, ANN202
        seen.update(tokens=tokens, xyz=xyz, mask=mask)
        return {}, {}

    monkeypatch.setattr(model.language, "loss_terms", capture)
    with torch.no_grad():
        out = model(images[None])
        batch = {"prompts": [["How many chairs?"]], "boxes": [[None]], "box_frame": torch.eye(4)[None]}
        JointModule(model, Stage2Spec()).vl_terms(model.language, out, batch)
    mask = seen["mask"][0]
    assert torch.equal(seen["tokens"][0][mask], enc.tokens)
    assert torch.equal(seen["xyz"][0][mask], enc.xyz)

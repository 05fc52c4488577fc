"""SceneLanguageModel with tiny random Qwen2 and Llama LLMs: labels, answer-only loss, generation, grounding."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vidllm_core.config import LanguageConfig
from vidllm_core.errors import CheckpointError, ConfigError, DataError
from vidllm_core.language import prompts as P
from vidllm_core.language.fusion import SceneLanguageModel
from vidllm_core.losses.language import IGNORE_INDEX, answer_cross_entropy

LLM_KINDS = ("qwen2", "llama")
TOKEN_DIM = 24  # tests/language/conftest.py builds the models with this token width

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def scene(b: int = 2, m: int = 5, counts: tuple[int, ...] = (5, 3), seed: int = 0):  # noqa: ANN201
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(b, m, TOKEN_DIM, generator=g)
    xyz = torch.rand(b, m, 3, generator=g) * 3.0
    mask = torch.zeros(b, m, dtype=torch.bool)
    for i, c in enumerate(counts[:b]):
        mask[i, :c] = True
    return tokens, xyz, mask


@pytest.fixture(params=LLM_KINDS)
def model(request, make_model) -> SceneLanguageModel:  # noqa: ANN001
    """Both tiny LLMs (the checks that depend on the architecture)."""
    return make_model(request.param)


@pytest.fixture
def qwen(make_model) -> SceneLanguageModel:  # noqa: ANN001
    """One tiny LLM for the checks that do not depend on the architecture (keeps the suite fast)."""
    return make_model("qwen2")


def test_labels_mask_exactly_the_answer(model: SceneLanguageModel) -> None:
    tok = model.tokenizer
    tokens, xyz, mask = scene()
    prompts = [P.scanqa_prompt("How many chairs?", "two"),
               P.sqa3d_prompt("I face the bed.", "What is left?", "a chair")]
    batch = model.build_batch(tokens, mask, prompts, [p.target for p in prompts])
    for i, p in enumerate(prompts):
        prompt_ids = tok(P.chat_text(tok, p.prompt), add_special_tokens=False)["input_ids"]
        answer = tok(p.target, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        n_prompt = len(prompt_ids) - 1 + int(mask[i].sum())  # the placeholder becomes M_i scene slots
        labels = batch.labels[i].tolist()
        assert labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
        assert labels[n_prompt:n_prompt + len(answer)] == answer
        assert all(x == IGNORE_INDEX for x in labels[n_prompt + len(answer):])  # right padding
        assert int(batch.attention_mask[i].sum()) == n_prompt + len(answer)
        assert int((batch.input_ids[i] == model.scene_id).sum()) == int(mask[i].sum())


def test_loss_is_answer_only(model: SceneLanguageModel) -> None:
    tokens, xyz, mask = scene()
    prompts = [P.scanqa_prompt("How many chairs?", "two"), P.scanqa_prompt("What color is the table?", "white")]
    total, parts = model.loss(tokens, xyz, mask, prompts)
    batch = model.build_batch(tokens, mask, prompts, [p.target for p in prompts])
    logits = model.llm(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask).logits
    # independent computation: mean NLL of the answer tokens only
    logp = torch.log_softmax(logits.float(), -1)
    nll = []
    for i in range(2):
        for t in range(logits.shape[1] - 1):
            y = int(batch.labels[i, t + 1])
            if y != IGNORE_INDEX:
                nll.append(-logp[i, t, y])
    torch.testing.assert_close(total, torch.stack(nll).mean(), rtol=1e-5, atol=1e-5)
    assert set(parts) == {"answer_ce", "ce_scanqa"}  # + the per-task log (all items are ScanQA here)
    torch.testing.assert_close(parts["ce_scanqa"], parts["answer_ce"])
    # perturbing the logits at positions that predict prompt / scene / pad tokens leaves the loss unchanged ...
    predicts_prompt = torch.zeros_like(batch.labels, dtype=torch.bool)
    predicts_prompt[:, :-1] = batch.labels[:, 1:] == IGNORE_INDEX
    noisy = logits + 5.0 * torch.randn_like(logits) * predicts_prompt[..., None]
    torch.testing.assert_close(answer_cross_entropy(noisy, batch.labels), total)
    # ... while perturbing an answer-predicting position changes it
    noisy2 = logits + 5.0 * torch.randn_like(logits) * (~predicts_prompt)[..., None]
    assert not torch.allclose(answer_cross_entropy(noisy2, batch.labels), total)


def test_gradients_reach_projector_and_llm(qwen: SceneLanguageModel) -> None:
    tokens, xyz, mask = scene()
    tokens.requires_grad_(True)
    total, _ = qwen.loss(tokens, xyz, mask, [P.scanqa_prompt("How many chairs?", "two")] * 2)
    total.backward()
    assert qwen.projector[0].weight.grad is not None and qwen.projector[0].weight.grad.abs().sum() > 0
    assert qwen.llm.get_input_embeddings().weight.grad is not None
    assert tokens.grad is not None and tokens.grad[mask].abs().sum() > 0
    assert not tokens.grad[~mask].abs().any()  # padding scene tokens never reach the LLM
    assert all(p.grad is None for p in qwen.grounding_head.parameters())


def test_scene_tokens_are_used_and_padding_is_not(qwen: SceneLanguageModel) -> None:
    tokens, xyz, mask = scene()
    prompts = [P.scanqa_prompt("How many chairs?")] * 2

    def logits(t: torch.Tensor) -> torch.Tensor:
        b = qwen.build_batch(t, mask, prompts)
        return qwen.llm(inputs_embeds=b.inputs_embeds, attention_mask=b.attention_mask).logits[:, -1]

    with torch.no_grad():
        base = logits(tokens)
        pad_changed = tokens.clone()
        pad_changed[~mask] = 100.0
        torch.testing.assert_close(logits(pad_changed), base)
        real_changed = tokens.clone()
        real_changed[0, 0] += 3.0
        assert not torch.allclose(logits(real_changed)[0], base[0])
        torch.testing.assert_close(logits(real_changed)[1], base[1])


def test_generation_from_embeds_matches_input_ids(model: SceneLanguageModel) -> None:
    tok = model.tokenizer
    prompt = "How many chairs are in the room?"  # no <scene>: no 3D tokens
    tokens, xyz, mask = scene(1, 4, (4,))
    out = model.generate(tokens, xyz, mask, [prompt], max_new_tokens=6)
    ids = tok(P.chat_text(tok, prompt), add_special_tokens=False, return_tensors="pt")["input_ids"]
    ref = model.llm.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)[0, ids.shape[1]:]
    assert out == [tok.decode(ref, skip_special_tokens=True).strip()]


def test_batched_left_padded_generation_matches_single(model: SceneLanguageModel) -> None:
    tokens, xyz, mask = scene(2, 5, (5, 2), seed=3)
    prompts = [P.scanqa_prompt("How many chairs?"), P.scan2cap_prompt(point=[1.0, 2.0, 0.5])]
    both = model.generate(tokens, xyz, mask, prompts, max_new_tokens=5)
    single = [model.generate(tokens[i:i + 1], xyz[i:i + 1], mask[i:i + 1], [prompts[i]], max_new_tokens=5)[0]
              for i in range(2)]
    assert both == single


def test_sampling_is_deterministic_with_seed(qwen: SceneLanguageModel) -> None:
    tokens, xyz, mask = scene(1, 5, (5,))
    prompts = [P.scanqa_prompt("How many chairs?")]
    kw = dict(max_new_tokens=6, temperature=2.0)
    state = torch.random.get_rng_state()
    a = qwen.generate(tokens, xyz, mask, prompts, seed=7, **kw)
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is left as it was
    assert qwen.generate(tokens, xyz, mask, prompts, seed=7, **kw) == a
    others = {tuple(qwen.generate(tokens, xyz, mask, prompts, seed=s, **kw)) for s in (8, 9)}
    assert others != {tuple(a)}  # the seed matters when sampling


def test_ground_boxes_well_formed(model: SceneLanguageModel) -> None:
    tokens, xyz, mask = scene()
    prompts = [P.grounding_prompt("the chair"), P.grounding_prompt("the chairs", multiple=True)]
    res = model.ground(tokens, xyz, mask, prompts, threshold=0.0)
    assert res[0][0].shape == (1, 6) and res[0][1].shape == (1,)
    q = model.grounding_head.num_queries
    assert res[1][0].shape == (q, 6)  # threshold 0: every query
    for boxes, scores in res:
        assert torch.isfinite(boxes).all() and (boxes[:, 3:] > 0).all()
        assert ((scores >= 0) & (scores <= 1)).all()
        assert torch.all(scores[:-1] >= scores[1:])
    none = model.ground(tokens, xyz, mask, prompts, multiple=True, threshold=1.01)
    assert all(b.shape == (0, 6) for b, _ in none)  # zero-target answers
    # centres start at attention-weighted token positions: inside the scene's bounding box
    head, _ = model.ground_outputs(tokens, xyz, mask, prompts)
    lo, hi = xyz[0, mask[0]].min(0).values, xyz[0, mask[0]].max(0).values
    assert ((head.boxes[0, :, :3] >= lo - 1e-5) & (head.boxes[0, :, :3] <= hi + 1e-5)).all()


def test_ground_with_proposals(qwen: SceneLanguageModel) -> None:
    tokens, xyz, mask = scene()
    props = torch.tensor([[0.5, 0.5, 0.5, 1.0, 1.0, 1.0], [2.0, 2.0, 2.0, 1.0, 1.0, 1.0], [9, 9, 9, 0.1, 0.1, 0.1]])
    res = qwen.ground(tokens, xyz, mask, [P.grounding_prompt("the chair")] * 2, proposals=[props, props[:2]])
    for boxes, scores in res:
        assert boxes.shape == (1, 6)
        assert any(torch.equal(boxes[0], p) for p in props)


def test_grounding_loss_has_gradients(qwen: SceneLanguageModel) -> None:
    qwen.train()
    tokens, xyz, mask = scene()
    prompts = [P.grounding_prompt("the chair"), P.grounding_prompt("the lamps", multiple=True)]
    gt = [torch.tensor([[1.0, 1.0, 1.0, 0.5, 0.5, 0.8]]), torch.zeros(0, 6)]  # second: zero-target
    props = [torch.tensor([[1.0, 1.0, 1.0, 0.5, 0.5, 0.8], [2, 2, 2, 1, 1, 1.0]]),
             torch.tensor([[0.5, 1, 1, 1, 1, 1.0]])]
    total, parts = qwen.loss(tokens, xyz, mask, prompts, gt_boxes=gt, proposals=props)
    assert {"answer_ce", "grounding", "ground_l1", "ground_iou", "ground_objectness", "ground_proposal"} <= set(parts)
    assert torch.isfinite(total) and float(parts["grounding"]) > 0
    total.backward()
    head = qwen.grounding_head
    for p in (head.queries, head.size.weight, head.center_offset.weight, head.objectness.weight,
              head.proposal_query.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0
    # the LLM gets a grounding gradient through the <ground> hidden state
    assert qwen.llm.get_input_embeddings().weight.grad[qwen.ground_id].abs().sum() > 0
    with pytest.raises(ValueError, match="gt_boxes"):
        qwen.loss(tokens, xyz, mask, prompts)


def test_empty_scene_grounding_is_finite(qwen: SceneLanguageModel) -> None:
    tokens, xyz, mask = scene(1, 3, (0,))
    (boxes, scores), = qwen.ground(tokens, xyz, mask, [P.grounding_prompt("x", multiple=True)])
    assert boxes.shape == (0, 6)


def test_config_and_directory_errors(tmp_path: Path, tokenizer, make_model, token_dim) -> None:  # noqa: ANN001
    assert token_dim == TOKEN_DIM
    with pytest.raises(ConfigError, match="model_type"):
        SceneLanguageModel.from_config(LanguageConfig(llm={}), tokenizer, TOKEN_DIM)
    with pytest.raises(ConfigError):
        SceneLanguageModel.from_config(LanguageConfig(llm={"model_type": "no_such_llm"}), tokenizer, TOKEN_DIM)
    m = make_model("qwen2")
    m.llm.save_pretrained(str(tmp_path / "llm"))
    with pytest.raises(CheckpointError, match="no tokenizer"):
        SceneLanguageModel.from_llm_dir(tmp_path / "llm", LanguageConfig(), TOKEN_DIM)
    tokenizer.save_pretrained(str(tmp_path / "llm"))
    loaded = SceneLanguageModel.from_llm_dir(tmp_path / "llm", LanguageConfig(), TOKEN_DIM)
    for k, v in m.llm.state_dict().items():
        assert torch.equal(v, loaded.llm.state_dict()[k]), k
    (tmp_path / "llm" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError):
        SceneLanguageModel.from_llm_dir(tmp_path / "llm", LanguageConfig(), TOKEN_DIM)
    tokens, xyz, mask = scene()
    with pytest.raises(DataError, match="placeholders"):
        m.build_batch(tokens, mask, ["<scene> and <scene>", "<scene>"])
    with pytest.raises(DataError, match="context"):
        m.build_batch(tokens, mask, ["<scene> " + "chair " * 600, "<scene>"])

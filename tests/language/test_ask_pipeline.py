"""Video -> answers / boxes with the tiny random VidLLM (issue 5 must-shows): generation end to end, well-formed
boxes in metres, the scene cache (no second vision pass, identical results), the answer-only loss, checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vidllm_core.language.cache import SceneCache, tensors_equal
from vidllm_core.models.vidllm import VidLLM

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def model(tiny_model_dir) -> VidLLM:  # noqa: ANN001
    return VidLLM.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def scene(model, tiny_video):  # noqa: ANN001, ANN201 - Scene (no cache)
    from vidllm_core.pipelines.vision_pass import run_vision_pass

    return run_vision_pass(model, tiny_video, tokens=True)


def test_generation_from_a_video_end_to_end(model, scene):  # noqa: ANN001
    from vidllm_core.pipelines.language import ask

    enc = scene.encoding
    assert not scene.cached
    s = model.config.input.num_frames
    assert scene.images.shape[0] == s and scene.images.dtype == np.uint8
    assert enc.tokens.shape[1] == model.config.encoder.embed_dim
    assert 0 < enc.tokens.shape[0] <= model.config.language.token_budget and enc.mask.all()
    answers = ask(model, enc, ["How many chairs?", "What color is the table?"], max_new_tokens=4)
    assert [a.question for a in answers] == ["How many chairs?", "What color is the table?"]
    assert all(isinstance(a.answer, str) and not a.truncated for a in answers)
    # generation actually ran the LLM: the first new token is the argmax of the logits after the prompt
    from vidllm_core.language import prompts as P

    lang = model.language
    batch = lang.build_batch(enc.tokens[None], enc.mask[None], [P.scanqa_prompt("How many chairs?")], None,
                             padding_side="left")
    with torch.no_grad():
        first = int(lang.llm(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask).logits[0, -1]
                    .argmax())
    ids = lang.llm.generate(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
                            max_new_tokens=1, do_sample=False, pad_token_id=lang.pad_id)
    assert int(ids[0, -1]) == first


def test_grounding_returns_well_formed_boxes_in_metres(model, scene):  # noqa: ANN001
    from vidllm_core.pipelines.language import ground, scene_bounds

    enc = scene.encoding
    assert enc.geometry.metric is True and enc.geometry.scale > 0  # metric-depth aligned: world units are metres
    one = ground(model, enc, "the black chair next to the desk")
    assert one.boxes.shape == (1, 6) and one.scores.shape == (1,)
    assert np.isfinite(one.boxes).all() and (one.boxes[:, 3:] > 0).all() and 0 <= one.scores[0] <= 1
    lo, hi = scene_bounds(enc, 0.0, 100.0, frame=one.frame)   # boxes are in the box frame
    assert ((one.boxes[0, :3] >= lo - 1.0) & (one.boxes[0, :3] <= hi + 1.0)).all()  # centre inside the scene
    many = ground(model, enc, "all the chairs", multiple=True, threshold=0.0)
    assert many.boxes.shape == (model.config.language.num_grounding_queries, 6)
    assert (np.diff(many.scores) <= 0).all()  # best first
    none = ground(model, enc, "all the chairs", multiple=True, threshold=1.0)
    assert none.boxes.shape == (0, 6)
    props = np.array([[0.0, 0.0, 1.0, 0.5, 0.5, 0.5], [1.0, 0.0, 2.0, 0.4, 0.8, 0.6]])
    chosen = ground(model, enc, "the black chair", proposals=props)
    assert chosen.boxes.shape == (1, 6) and any(np.allclose(chosen.boxes[0], p) for p in props)


def test_cached_second_question_skips_the_vision_pass(model, scene, tiny_video, tmp_path,  # noqa: ANN001
                                                      count_vision):
    from vidllm_core.pipelines.language import ask, ground
    from vidllm_core.data.frames import open_frame_source
    from vidllm_core.pipelines.scene import cache_key
    from vidllm_core.pipelines.vision_pass import run_vision_pass

    cache = SceneCache(tmp_path / "cache")
    first = run_vision_pass(model, tiny_video, tokens=True, cache=cache)
    assert count_vision[0] == 1 and not first.cached and first.cache_key in cache
    second = run_vision_pass(model, tiny_video, tokens=True, cache=cache)
    assert count_vision[0] == 1 and second.cached  # no second vision pass
    other = cache_key(model, open_frame_source(tiny_video), 3)
    assert other != first.cache_key and other not in cache  # other sampling arguments: another entry
    # the cached scene keeps the frame metadata and the resize maps
    assert first.frame_ids == second.frame_ids and first.reconstruction.infos == second.reconstruction.infos
    np.testing.assert_array_equal(first.frames.timestamps, second.frames.timestamps)
    # identical results with and without the cache
    uncached = scene
    a, b = first.encoding.to_tensors()[0], second.encoding.to_tensors()[0]
    assert tensors_equal(a, b) and tensors_equal(a, uncached.encoding.to_tensors()[0])
    assert np.array_equal(first.images, second.images) and first.source_frames == second.source_frames
    qs = ["How many chairs?", "Is there a bed?"]
    assert ask(model, second.encoding, qs, max_new_tokens=5) == ask(model, uncached.encoding, qs, max_new_tokens=5)
    g1, g2 = ground(model, second.encoding, "the table"), ground(model, uncached.encoding, "the table")
    assert np.array_equal(g1.boxes, g2.boxes) and np.array_equal(g1.scores, g2.scores)


def test_answer_only_loss_is_what_training_uses(model, scene):  # noqa: ANN001
    from vidllm_core.language import prompts as P
    from vidllm_core.losses.language import IGNORE_INDEX

    enc = scene.encoding
    lang = model.language
    prompt = P.scanqa_prompt("How many chairs?", "two")
    tokens, xyz, mask = enc.tokens[None], enc.xyz[None], enc.mask[None]
    terms, _ = lang.loss_terms(tokens, xyz, mask, [prompt])
    batch = lang.build_batch(tokens, mask, [prompt.prompt], ["two"])
    labelled = batch.labels[0] != IGNORE_INDEX
    answer_ids = lang.tokenizer("two", add_special_tokens=False)["input_ids"] + [lang.eos_id]
    assert batch.labels[0][labelled].tolist() == answer_ids  # only the answer + eos carry labels
    with torch.no_grad():
        logits = lang.llm(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask).logits[0]
    pos = torch.nonzero(labelled).flatten()
    manual = torch.nn.functional.cross_entropy(logits[pos - 1].float(), batch.labels[0][pos])
    torch.testing.assert_close(terms["answer_ce"].detach(), manual, rtol=1e-5, atol=1e-5)
    # the training step (stage 2) reaches the same terms through `model.language.loss_terms`
    from vidllm_core.training import stage2

    assert "loss_terms" in stage2.JointModule.vl_terms.__code__.co_names


def test_checkpoint_round_trip_with_tied_embeddings(model, tmp_path):  # noqa: ANN001
    assert model.language.llm.config.tie_word_embeddings
    model.save_pretrained(tmp_path / "again")
    from safetensors.torch import load_file

    keys = load_file(str(tmp_path / "again" / "model.safetensors")).keys()
    assert any(k.startswith("language.llm.") for k in keys) and "language.llm.lm_head.weight" not in keys
    back = VidLLM.from_pretrained(tmp_path / "again")
    assert back.language.llm.lm_head.weight.data_ptr() == back.language.llm.get_input_embeddings().weight.data_ptr()
    ref, got = model.state_dict(), back.state_dict()
    assert ref.keys() == got.keys() and all(torch.equal(ref[k], got[k]) for k in ref)
    assert json.loads((tmp_path / "again" / "config.json").read_text())["language"]["llm"]["vocab_size"] == \
        len(back.language.tokenizer)


def test_vision_only_model_has_no_language(tmp_path):  # noqa: ANN001
    from vidllm_core.config import VidLLMConfig
    from vidllm_core.errors import CheckpointError
    from vidllm_core.pipelines.language import require_language

    m = VidLLM(VidLLMConfig.from_name("tiny"))
    assert not m.has_language and not hasattr(m, "language")
    m.save_pretrained(tmp_path / "v")
    back = VidLLM.from_pretrained(tmp_path / "v")
    with pytest.raises(CheckpointError, match="no language branch"):
        require_language(back)


def test_gravity_alignment_recovers_a_tilted_floor():
    from scipy.spatial.transform import Rotation

    from vidllm_core.pipelines.gravity import estimate_gravity, transform_points

    rng = np.random.default_rng(0)
    floor = np.c_[rng.uniform(-2, 2, (3000, 2)), np.zeros(3000)]
    wall = np.c_[rng.uniform(-2, 2, 1000), np.full(1000, 2.0), rng.uniform(0, 2.5, 1000)]
    z_up_world = np.concatenate([floor, wall]) + rng.normal(0, 0.005, (4000, 3))
    tilt = Rotation.from_euler("xyz", [100, 5, 20], degrees=True).as_matrix()  # an arbitrary reconstruction frame
    pts = z_up_world @ tilt.T + np.array([0.3, -1.0, 2.0])
    down = tilt @ np.array([0.1, 0.0, -1.0])  # cameras roughly level: their down is near -up
    cams = (np.array([[0, 0, 1.5], [1, 0, 1.4]]) @ tilt.T) + np.array([0.3, -1.0, 2.0])
    g = estimate_gravity(pts, down, cams)
    assert g.method == "ransac" and g.inliers > 500
    aligned = transform_points(pts, g.transform)
    np.testing.assert_allclose(aligned[:3000, 2], 0.0, atol=0.03)  # floor at z = 0
    assert (aligned[3000:, 2] > -0.05).all() and aligned[3000:, 2].max() > 2.3  # the wall rises along +z

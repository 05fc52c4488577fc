"""`vidllm ask | caption | ground` and `vidllm init --llm` (issue 5): outputs, the cache across calls, and one clear
line for each bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tests.helpers.cli import invoke, one_error_line, runner
from vidllm_cli.main import app
from vidllm_core.models.vidllm import VidLLM

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_ask_twice_uses_one_vision_pass(tiny_model_dir, tiny_video, tmp_path, count_vision):  # noqa: ANN001
    cache = tmp_path / "cache"
    first = invoke("ask", tiny_video, "How many chairs?", "-q", "Is there a bed?", "--model", tiny_model_dir,
                   "--cache-dir", cache, "--json", "--max-new-tokens", 4)
    assert first.exit_code == 0, first.output
    out1 = json.loads(first.stdout)
    assert count_vision[0] == 1 and out1["cached"] is False and len(out1["answers"]) == 2  # 2 questions, 1 pass
    second = invoke("ask", tiny_video, "How many chairs?", "--model", tiny_model_dir, "--cache-dir", cache, "--json",
                    "--max-new-tokens", 4)
    out2 = json.loads(second.stdout)
    assert count_vision[0] == 1 and out2["cached"] is True  # the follow-up skipped the vision pass
    assert out2["answers"][0] == out1["answers"][0]
    third = invoke("ask", tiny_video, "How many chairs?", "--model", tiny_model_dir, "--no-cache", "--json",
                   "--max-new-tokens", 4)
    assert count_vision[0] == 2 and json.loads(third.stdout)["answers"][0] == out1["answers"][0]


def test_ground_writes_json_ply_png(tiny_model_dir, tiny_video, tmp_path):  # noqa: ANN001
    import trimesh
    from PIL import Image

    out, ply, png = tmp_path / "b.json", tmp_path / "b.ply", tmp_path / "b.png"
    result = invoke("ground", tiny_video, "the black chair", "--model", tiny_model_dir, "--cache-dir",
                    tmp_path / "c", "-o", out, "--ply", ply, "--png", png, "--gravity-align")
    assert result.exit_code == 0, result.output
    rec = json.loads(out.read_text())
    assert rec["units"] == "metres" and rec["frame"]["name"].startswith("gravity_aligned") and len(rec["boxes"]) == 1
    assert rec["frame"]["source"] == "estimated" and np.asarray(rec["frame"]["from_reconstruction"]).shape == (4, 4)
    box = rec["boxes"][0]["box"]
    assert len(box) == 6 and all(v > 0 for v in box[3:])
    mesh = trimesh.load(ply, process=False)
    assert len(mesh.faces) == 12 * 12 and len(mesh.vertices) > 12 * 8  # 12 prisms + the point cloud
    assert Image.open(png).size[0] >= 640
    glb = tmp_path / "b.glb"
    assert invoke("ground", tiny_video, "the chair", "--model", tiny_model_dir, "--cache-dir", tmp_path / "c",
                  "--ply", glb, "--multiple", "--threshold", "0").exit_code == 0
    assert len(trimesh.load(glb).geometry) == 2  # points + boxes
    boxed = tmp_path / "boxframe.json"   # without --gravity-align: the box frame, which caption reads too
    assert invoke("ground", tiny_video, "the chair", "--model", tiny_model_dir, "--cache-dir", tmp_path / "c",
                  "-o", boxed, "--multiple", "--threshold", "0").exit_code == 0
    box = json.loads(boxed.read_text())["boxes"][0]["box"]
    cap = invoke("caption", tiny_video, "--box", ",".join(map(str, box)), "--model", tiny_model_dir, "--cache-dir",
                 tmp_path / "c", "--json", "--max-new-tokens", 3)
    assert cap.exit_code == 0, cap.output
    got = json.loads(cap.stdout)
    assert "with size" in got["prompt"] and got["frame"]["source"] == "estimated"
    every = invoke("caption", tiny_video, "--proposals", boxed, "--model", tiny_model_dir, "--cache-dir",
                   tmp_path / "c", "--json", "--max-new-tokens", 2)
    assert every.exit_code == 0, every.output
    lines = [json.loads(line) for line in every.stdout.splitlines()]   # JSON lines: one per box, frame stated
    assert [r["index"] for r in lines] == list(range(len(json.loads(boxed.read_text())["boxes"])))
    assert all(r["frame"]["name"].startswith("box frame") for r in lines)


def test_bad_inputs_are_one_line(tiny_model_dir, tiny_video, tmp_path, monkeypatch):  # noqa: ANN001
    common = ("--model", tiny_model_dir, "--cache-dir", tmp_path / "c", "--max-new-tokens", 2)
    one_error_line(invoke("ask", tiny_video, "   ", *common), "question is empty")
    # without --model the shipped demo model is used; an install without one says so in one line
    import vidllm_core.assets

    monkeypatch.setattr(vidllm_core.assets, "DEMO_MODEL_DIR", tmp_path / "no-demo-model")
    one_error_line(invoke("ask", tiny_video, "How many chairs?"), "no shipped demo model in this install")
    monkeypatch.undo()
    bad = tmp_path / "q.txt"
    bad.write_bytes(b"How many chairs?\n\xff\xfe bad\n")
    one_error_line(invoke("ask", tiny_video, "--questions", bad, *common), "is not UTF-8 text")
    one_error_line(invoke("caption", tiny_video, "--point", "0,0,500", *common), "outside the reconstruction")
    one_error_line(invoke("caption", tiny_video, "--box", "1,2,3", *common), "--box needs 6")
    one_error_line(invoke("ask", tmp_path / "missing.mp4", "Why?", *common), "video not found")
    # a 100 KB question: answered, with a warning that it was cut
    long = invoke("ask", tiny_video, "chair " * 17000, *common)
    assert long.exit_code == 0, long.output
    assert "warning: the question is longer than 64 tokens and was cut" in long.output


def test_bad_model_directories(tiny_model_dir, tiny_video, tmp_path):  # noqa: ANN001
    common = ("--cache-dir", tmp_path / "c", "--max-new-tokens", 2)
    no_tok = tmp_path / "no_tok"
    shutil.copytree(tiny_model_dir, no_tok)
    shutil.rmtree(no_tok / "tokenizer")
    one_error_line(invoke("ask", tiny_video, "Why?", "--model", no_tok, *common), "holds an LLM but no tokenizer")
    wrong = tmp_path / "wrong"
    shutil.copytree(tiny_model_dir, wrong)
    cfg = json.loads((wrong / "config.json").read_text())
    cfg["language"]["llm"]["hidden_size"] = 32
    (wrong / "config.json").write_text(json.dumps(cfg))
    one_error_line(invoke("ask", tiny_video, "Why?", "--model", wrong, *common), "do not match the model config")
    vision_only = tmp_path / "vision"
    assert invoke("init", "--preset", "tiny", "--no-llm", "-o", vision_only).exit_code == 0
    one_error_line(invoke("ask", tiny_video, "Why?", "--model", vision_only, *common), "no language branch")


def test_init_with_a_local_llm(tiny_video, tmp_path):  # noqa: ANN001
    """`vidllm init --llm DIR`: any local causal LM + its tokenizer; a directory without a tokenizer is one line."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    from vidllm_core.language.tokenizer import build_tokenizer

    llm_dir = tmp_path / "llama"
    tok = build_tokenizer(["How many chairs are in the room? two chairs. a black chair."] * 4, vocab_size=300)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
                      pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(llm_dir)
    one_error_line(invoke("init", "--preset", "tiny", "--llm", llm_dir, "-o", tmp_path / "m0"), "no tokenizer in")
    assert not (tmp_path / "m0" / "model.safetensors").exists()
    tok.save_pretrained(str(llm_dir))
    result = invoke("init", "--preset", "tiny", "--llm", llm_dir, "-o", tmp_path / "m")
    assert result.exit_code == 0, result.output
    model = VidLLM.from_pretrained(tmp_path / "m")
    assert type(model.language.llm).__name__ == "LlamaForCausalLM"
    assert model.config.language.llm["hidden_size"] == 32
    ask = invoke("ask", tiny_video, "How many chairs?", "--model", tmp_path / "m", "--no-cache", "--json",
                 "--max-new-tokens", 2)
    assert ask.exit_code == 0, ask.output
    assert json.loads(ask.stdout)["answers"][0]["question"] == "How many chairs?"


def test_ask_interactive_answers_each_stdin_line_with_one_vision_pass(tiny_model_dir, tiny_video, tmp_path,
                                                                      count_vision):
    args = ["ask", str(tiny_video), "--model", str(tiny_model_dir), "--no-cache", "--json", "--max-new-tokens", "4"]
    batch = runner.invoke(app, [*args, "How many chairs?", "-q", "Is there a bed?"])
    assert batch.exit_code == 0, batch.output
    expected = [a["answer"] for a in json.loads(batch.stdout)["answers"]]
    session = runner.invoke(app, [*args, "--interactive"], input="How many chairs?\n\n   \nIs there a bed?\n")
    assert session.exit_code == 0, session.output
    lines = [json.loads(line) for line in session.stdout.splitlines() if line.strip()]
    assert [r["question"] for r in lines] == ["How many chairs?", "Is there a bed?"]  # blank lines skipped
    assert [r["answer"] for r in lines] == expected and all(r["answer_s"] >= 0 for r in lines)
    assert count_vision[0] == 2  # one pass for the batch call, one for the whole interactive session


def test_ask_interactive_reports_a_bad_line_and_goes_on(tiny_model_dir, tiny_video, tmp_path):
    session = runner.invoke(app, ["ask", str(tiny_video), "Is there a bed?", "-i", "--model", str(tiny_model_dir),
                                  "--no-cache", "--max-new-tokens", "2", "--json"],
                            input="<scene> <eos>\n" + "x" * 100_000 + "\nexit\nnot read\n")
    assert session.exit_code == 0, session.output
    errors = [line for line in session.output.splitlines() if line.startswith("error:")]
    assert errors == ["error: question is empty"]  # only reserved tokens: one line, and the session goes on
    assert "longer than" in session.output  # the 100 KB line is cut with a warning, then answered
    answered = [json.loads(line)["question"][:5] for line in session.stdout.splitlines() if line.strip()]
    assert answered == ["Is th", "xxxxx"]  # the argument, then the long line; "exit" ends before "not read"
    assert "Traceback" not in session.output

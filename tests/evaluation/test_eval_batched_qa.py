"""`vidllm eval scanqa|sqa3d --model` answers the questions of a scene together (issue 16 item 4): the same
predictions.jsonl as one question at a time, fewer generate calls, and an interrupted run (mid-batch) resumes to the
same file. The shipped demo model (trained: real, varied answers) on two small `vidllm synth` scenes."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from vidllm_cli.main import app
from vidllm_core.evaluation import language_hooks

ANN = {"scanqa": ["ScanQA_v1.0_train.json"],
       "sqa3d": ["v1_balanced_questions_train_scannetv2.json", "v1_balanced_sqa_annotations_train_scannetv2.json"]}


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    from vidllm_core.assets import default_model_dir

    root = tmp_path_factory.mktemp("batched_qa") / "synth"
    res = CliRunner().invoke(app, ["synth", str(root), "--scenes", "2", "--seed", "0", "--frames", "8", "--size",
                                   "64x48", "--no-video", "--split-ratios", "1,0,0"])
    assert res.exit_code == 0, res.output
    return SimpleNamespace(root=root, model=default_model_dir())


def run(synth: SimpleNamespace, task: str, out: Path, batch: int | None, limit: int = 24) -> list[dict]:
    """The `--model` run of `vidllm eval` (prepare + resumable predictions), questions of a scene `batch` at a time."""
    from vidllm_core.evaluation import run as ev
    from vidllm_core.evaluation.context import EvalContext
    from vidllm_core.evaluation.tasks import get_task

    spec = get_task(task)
    records, _ = ev.load_items(spec, [synth.root / "annotations" / a for a in ANN[task]])
    items = ev.select_items(records, limit, None)
    ctx = EvalContext(scenes_dir=synth.root / "posed_images", all_records=records, allow_missing_alignment=True,
                      answer_batch_size=batch)
    ev.model_predictions(spec, synth.model, spec.prepare(synth.model, out, items, ctx), out, ctx)
    return [json.loads(line) for line in (out / ev.PREDICTIONS_FILE).read_text().splitlines()]


@pytest.mark.parametrize("task", list(ANN))
def test_batched_eval_equals_one_question_at_a_time(synth: SimpleNamespace, task: str, tmp_path: Path,
                                                     generate_calls: list[int]) -> None:
    one = run(synth, task, tmp_path / "one", 1)
    assert set(generate_calls) == {1} and len(generate_calls) == len(one)
    generate_calls.clear()
    batched = run(synth, task, tmp_path / "batched", None)
    assert batched == one                                     # same records, same order
    assert len({r["answer"] for r in one}) > 2                 # real, varied answers (not all empty)
    assert len(generate_calls) < len(one) / 4 and max(generate_calls) > 4
    assert (tmp_path / "batched" / "predictions.jsonl").read_bytes() == \
        (tmp_path / "one" / "predictions.jsonl").read_bytes()


def test_interrupted_mid_batch_resumes_to_the_same_file(synth: SimpleNamespace, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    full = run(synth, "scanqa", tmp_path / "full", None)
    calls = [0]
    real = language_hooks.predict_record

    def dies_at_the_sixth(task, model_dir, record, ctx):  # noqa: ANN001, ANN202
        calls[0] += 1
        if calls[0] == 6:   # inside the first scene's batch: its answers exist only in memory
            raise KeyboardInterrupt
        return real(task, model_dir, record, ctx)

    monkeypatch.setattr(language_hooks, "predict_record", dies_at_the_sixth)
    with pytest.raises(KeyboardInterrupt):
        run(synth, "scanqa", tmp_path / "cut", None)
    assert len((tmp_path / "cut" / "predictions.jsonl").read_text().splitlines()) == 5
    monkeypatch.setattr(language_hooks, "predict_record", real)
    assert run(synth, "scanqa", tmp_path / "cut", None) == full

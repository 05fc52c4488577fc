"""`vidllm eval` (issue 14): provenance in every metrics.json, `--merge` refuses mixtures and unsharded outputs,
the user's predictions are never overwritten, outputs are checked before the work, one writer per `--model` folder,
and a full disk is one line that keeps the earlier outputs."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from tests.fixtures import BENCH
from tests.helpers.cli import one_error_line
from tests.reliability.conftest import disk_full_in, snapshot
from vidllm_cli.main import app

SCANQA = BENCH / "scanqa_val_sample.json"
runner = CliRunner()


def evaluate(*args: object):  # noqa: ANN201
    return runner.invoke(app, ["eval", *map(str, args)])


def predictions(path: Path, right: set[int]) -> Path:
    rows = json.loads(SCANQA.read_text())
    path.write_text("".join(json.dumps({"question_id": r["question_id"],
                                        "answer": r["answers"][0] if i in right else f"wrong {i}"}) + "\n"
                            for i, r in enumerate(rows)))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- provenance and --merge ----------------------------------------------------------------------------------------

def test_metrics_json_records_provenance(tmp_path: Path) -> None:
    preds = predictions(tmp_path / "p.jsonl", {0, 1})
    assert evaluate("scanqa", "-a", SCANQA, "--predictions", preds, "-o", tmp_path / "o").exit_code == 0
    prov = json.loads((tmp_path / "o" / "metrics.json").read_text())["run"]["provenance"]
    from vidllm_core import __version__

    assert prov["predictions_sha256"] == sha256(preds)
    assert prov["annotations_sha256"] == [sha256(SCANQA)]
    assert prov["task"] == "scanqa" and prov["vidllm_version"] == __version__
    assert prov["command"].startswith("vidllm ")


def test_merge_refuses_shards_of_different_prediction_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = predictions(tmp_path / "a.jsonl", {0, 1, 2}), predictions(tmp_path / "b.jsonl", set(range(20)))
    assert evaluate("scanqa", "-a", SCANQA, "--predictions", a, "--shard", "0/2", "-o", tmp_path / "s0").exit_code == 0
    assert evaluate("scanqa", "-a", SCANQA, "--predictions", b, "--shard", "1/2", "-o", tmp_path / "s1").exit_code == 0
    one_error_line(evaluate("scanqa", "--merge", tmp_path / "s0", tmp_path / "s1", "-o", tmp_path / "m"),
                   "predictions sha256", "mix two runs")
    assert not (tmp_path / "m").exists()
    assert evaluate("scanqa", "-a", SCANQA, "--predictions", a, "--shard", "1/2", "-o", tmp_path / "s1a").exit_code == 0
    args = ["eval", "scanqa", "--merge", str(tmp_path / "s0"), str(tmp_path / "s1a"), "-o", str(tmp_path / "m")]
    monkeypatch.setattr("sys.argv", ["/venv/bin/vidllm", *args])  # what a real process sees (CliRunner keeps pytest's)
    ok = runner.invoke(app, args)
    assert ok.exit_code == 0, ok.output  # the same file in both shards merges
    merged = json.loads((tmp_path / "m" / "metrics.json").read_text())["run"]["provenance"]
    assert merged["predictions_sha256"] == sha256(a) and merged["command"] == "vidllm " + " ".join(args)


def test_merge_refuses_unsharded_outputs(tmp_path: Path) -> None:
    preds = predictions(tmp_path / "p.jsonl", {0})
    for name in ("u1", "u2"):
        assert evaluate("scanqa", "-a", SCANQA, "--predictions", preds, "-o", tmp_path / name).exit_code == 0
    one_error_line(evaluate("scanqa", "--merge", tmp_path / "u1", tmp_path / "u2", "-o", tmp_path / "m"),
                   "unsharded", "nothing to merge")
    one_error_line(evaluate("scanqa", "--merge", tmp_path / "u1", "-o", tmp_path / "m"), "unsharded")


def test_merge_refuses_output_without_provenance(tmp_path: Path) -> None:
    preds = predictions(tmp_path / "p.jsonl", {0})
    for i in (0, 1):
        out = tmp_path / f"s{i}"
        assert evaluate("scanqa", "-a", SCANQA, "--predictions", preds, "--shard", f"{i}/2", "-o", out).exit_code == 0
    doc = json.loads((tmp_path / "s1" / "metrics.json").read_text())
    del doc["run"]["provenance"]  # as an older vidllm wrote it
    (tmp_path / "s1" / "metrics.json").write_text(json.dumps(doc))
    one_error_line(evaluate("scanqa", "--merge", tmp_path / "s0", tmp_path / "s1", "-o", tmp_path / "m"),
                   "no provenance")


@pytest.fixture(scope="module")
def geo(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Two synthrooms scenes that fall in shards 1 and 0 of 2, and two tiny models with different weights."""
    import torch

    from vidllm_core.config import VidLLMConfig
    from vidllm_core.models.vidllm import VidLLM

    root = tmp_path_factory.mktemp("geo")
    res = runner.invoke(app, ["synth", str(root / "synth"), "--scenes", "3", "--frames", "4", "--size", "64x48",
                              "--no-video"])
    assert res.exit_code == 0, res.output
    (root / "list.txt").write_text("synth0001_00\nsynth0002_00\n")
    for seed in (0, 1):
        torch.manual_seed(seed)
        VidLLM(VidLLMConfig.from_name("tiny")).save_pretrained(root / f"tiny{seed}")
    return SimpleNamespace(list=root / "list.txt", scenes=root / "synth" / "posed_images", a=root / "tiny0",
                           b=root / "tiny1")


def test_merge_refuses_shards_of_different_models(geo: SimpleNamespace, tmp_path: Path) -> None:
    def shard(model: Path, i: int, out: Path) -> None:
        res = evaluate("depth", "-a", geo.list, "--scenes", geo.scenes, "--model", model, "--frames", 2,
                       "--shard", f"{i}/2", "-o", out, "--json")
        assert res.exit_code == 0, res.output

    shard(geo.a, 0, tmp_path / "a0")
    shard(geo.b, 1, tmp_path / "b1")
    one_error_line(evaluate("depth", "--merge", tmp_path / "a0", tmp_path / "b1", "-o", tmp_path / "m"),
                   "model weights sha256")
    assert not (tmp_path / "m").exists()
    shard(geo.a, 1, tmp_path / "a1")
    res = evaluate("depth", "--merge", tmp_path / "a0", tmp_path / "a1", "-o", tmp_path / "m", "--json")
    assert res.exit_code == 0, res.output


# --- the user's files are never overwritten; outputs checked before the work ---------------------------------------

def test_predictions_inside_the_output_folder_are_not_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    preds = predictions(out / "predictions.jsonl", {0, 1})
    with preds.open("a") as fh:  # ids of other splits: the cleaned subset would be shorter
        fh.write(json.dumps({"question_id": "train-scene9999-0", "answer": "x"}) + "\n")
    before = preds.read_bytes()
    one_error_line(evaluate("scanqa", "-a", SCANQA, "--predictions", preds, "-o", out), "is the input --predictions")
    one_error_line(evaluate("scanqa", "-a", SCANQA, "--predictions", preds, "-o", out, "--limit", 5),
                   "is the input --predictions")
    assert preds.read_bytes() == before and not (out / "metrics.json").exists()


def test_output_that_is_a_file_or_unwritable_is_refused_before_work(tmp_path: Path) -> None:
    preds = predictions(tmp_path / "p.jsonl", {0})
    taken = tmp_path / "taken"
    taken.write_text("keep me")
    one_error_line(evaluate("scanqa", "-a", SCANQA, "--predictions", preds, "-o", taken), str(taken), "not a folder")
    assert taken.read_text() == "keep me"
    line = one_error_line(evaluate("scanqa", "-a", SCANQA, "--predictions", preds, "-o", "/proc/vidllm-out"),
                          "/proc/vidllm-out")
    assert ".metrics.json" not in line  # the user's path, not a temporary file


def test_a_second_model_run_on_one_folder_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    from vidllm_core.io import run_lock

    out = tmp_path / "o"
    with run_lock(out):
        one_error_line(evaluate("scanqa", "-a", SCANQA, "--model", tiny_model_dir, "--scenes", tmp_path, "-o", out),
                       "in use by another vidllm run", f"pid {os.getpid()}")
        assert sorted(p.name for p in out.iterdir()) == [".vidllm.lock"]  # nothing written by the refused run


def test_full_disk_is_one_line_and_keeps_earlier_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "o"
    assert evaluate("scanqa", "-a", SCANQA, "--predictions", predictions(tmp_path / "a.jsonl", {0}),
                    "-o", out).exit_code == 0
    before = snapshot(out)
    disk_full_in(monkeypatch, out)
    line = one_error_line(evaluate("scanqa", "-a", SCANQA, "--predictions", predictions(tmp_path / "b.jsonl", {1, 2}),
                                   "-o", out), "no space left on device", str(out / "predictions.jsonl"))
    assert ".predictions.jsonl." not in line
    assert snapshot(out) == before  # no temporary file left, the earlier outputs byte for byte


def test_merge_refuses_shards_scored_on_different_annotation_contents(tmp_path: Path) -> None:
    """The same annotation path edited between two shards: the recorded checksums differ."""
    ann = tmp_path / "scanqa.json"
    rows = json.loads(SCANQA.read_text())
    ann.write_text(json.dumps(rows))
    preds = predictions(tmp_path / "p.jsonl", {0})
    assert evaluate("scanqa", "-a", ann, "--predictions", preds, "--shard", "0/2", "-o", tmp_path / "s0").exit_code == 0
    rows[0]["answers"] = ["something else"]
    ann.write_text(json.dumps(rows))
    assert evaluate("scanqa", "-a", ann, "--predictions", preds, "--shard", "1/2", "-o", tmp_path / "s1").exit_code == 0
    one_error_line(evaluate("scanqa", "--merge", tmp_path / "s0", tmp_path / "s1", "-o", tmp_path / "m"),
                   "annotations sha256")


def test_full_disk_during_a_model_run_is_one_line_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`eval --model` appends predictions one fsynced line at a time: a full disk stops it with one line naming
    predictions.jsonl, the lines already written stay, and the re-run predicts only the rest."""
    import dataclasses

    from vidllm_core.evaluation import predictions as pred_mod
    from vidllm_core.evaluation.tasks import TASKS

    seen: list[str] = []

    def hook(model_dir: Path, record, ctx) -> dict:  # noqa: ANN001 - a stand-in model
        seen.append(record.uid)
        return {"answer": "two"}

    monkeypatch.setitem(TASKS, "scanqa", dataclasses.replace(TASKS["scanqa"], predict=hook, prepare=None))
    real_fsync, calls = os.fsync, [0]

    def full_after_three(fd: int) -> None:
        calls[0] += 1
        if calls[0] > 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(pred_mod.os, "fsync", full_after_three)
    out = tmp_path / "out"
    one_error_line(evaluate("scanqa", "-a", SCANQA, "--model", tmp_path, "-o", out), "no space left on device",
                   str(out / "predictions.jsonl"))
    kept = [json.loads(x)["question_id"] for x in (out / "predictions.jsonl").read_text().splitlines()[:3]]
    assert kept == seen[:3]
    monkeypatch.setattr(pred_mod.os, "fsync", real_fsync)
    assert evaluate("scanqa", "-a", SCANQA, "--model", tmp_path, "-o", out).exit_code == 0
    ids = [json.loads(x)["question_id"] for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 20 and ids[:3] == kept

"""`vidllm synth` (issue 14): a re-run into an existing dataset is refused unless `--overwrite`, and one process at a
time writes a dataset folder."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tests.helpers.cli import one_error_line
from tests.reliability.conftest import snapshot
from vidllm_cli.main import app

runner = CliRunner()
SMALL = ["--frames", "4", "--size", "64x48", "--no-video"]


def synth(out: Path, *args: object):  # noqa: ANN201
    return runner.invoke(app, ["synth", str(out), *SMALL, *map(str, args)])


def test_rerun_into_a_dataset_is_refused_without_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "data"
    assert synth(out, "--scenes", 3, "--split-ratios", "0.34,0.33,0.33").exit_code == 0
    before = snapshot(out)
    assert (out / "splits" / "synthrooms_test.txt").read_text().strip()  # a non-empty test split
    one_error_line(synth(out, "--scenes", 1), "already holds a dataset", "--overwrite")
    assert snapshot(out) == before  # annotations and splits untouched
    assert synth(out, "--scenes", 1, "--overwrite").exit_code == 0  # asked for explicitly: rewritten
    assert (out / "splits" / "synthrooms_test.txt").read_text() == ""


def test_a_second_synth_into_one_folder_is_refused(tmp_path: Path) -> None:
    from vidllm_core.io import run_lock

    out = tmp_path / "data"
    with run_lock(out):
        one_error_line(synth(out, "--scenes", 1), "in use by another vidllm run")
        assert [p.name for p in out.iterdir()] == [".vidllm.lock"]

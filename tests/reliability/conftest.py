"""Fixtures for the reliability tests (issue 14): the tiny model / video of tests/language and the tiny scenes /
recipes of tests/training, plus the one-line error check every case uses."""

from __future__ import annotations

import pytest

from tests.language.conftest import tiny_model_dir, tiny_video  # noqa: F401  (fixtures)
from tests.training.conftest import make_recipe, scenes_dir, teacher_dirs, write_recipe  # noqa: F401


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> None:
    """2 shared CPU cores: one intra-op thread."""
    import torch

    torch.set_num_threads(1)


def one_error_line(result, *needles: str) -> str:  # noqa: ANN001 - a click Result
    """Exit code 2, exactly one `error: ` line on stderr containing every needle, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.stderr)
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def snapshot(folder) -> dict[str, bytes]:  # noqa: ANN001 - a Path
    """Every file under `folder` (relative name -> bytes): 'nothing already written lost or changed'."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}

"""A bare clone runs its own tests (issue 14): no test reads the sibling ../shared folder; LICENSE is the one named."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from tests.fixtures import FIXTURES

ROOT = FIXTURES.parents[1]
# `parents[2] / ".." / "shared"`, "../shared/...", Path("..", "shared"): every way the old tests reached it
OUTSIDE = re.compile(r"""["']\.\.["']\s*[/,]\s*["']shared["']|["'][^"'\s]*\.\./shared""")  # code, not prose


def test_no_test_reads_the_sibling_shared_folder() -> None:
    offenders = [f"{p.relative_to(ROOT)}:{n}" for p in sorted((ROOT / "tests").rglob("*.py")) if p != Path(__file__)
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if OUTSIDE.search(line)]
    assert not offenders, "tests must read tests/fixtures/ (see its README), not ../shared: " + ", ".join(offenders)


def test_the_pattern_catches_the_old_spellings() -> None:
    for line in ('X = Path(__file__).parents[2] / ".." / "shared" / "fixtures"', 'open("../shared/fixtures/a")',
                 "Path('..', 'shared')"):
        assert OUTSIDE.search(line), line
    assert not OUTSIDE.search("copied from the real samples in ../shared/fixtures (provenance)")


def test_license_file_is_the_licence_pyproject_names() -> None:
    licence = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["license"]["text"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert licence == "Apache-2.0" and "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text

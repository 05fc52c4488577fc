"""`vidllm ground`: not built yet (language-branch issue)."""

from vidllm_cli.common import not_built


def command() -> None:
    """(not built yet) see CHANGELOG.md."""
    not_built("ground", "language-branch issue")

"""`vidllm init`: not built yet (network issue)."""

from vidllm_cli.common import not_built


def command() -> None:
    """(not built yet) see CHANGELOG.md."""
    not_built("init", "network issue")

"""`vidllm train`: not built yet (training issue)."""

from vidllm_cli.common import not_built


def command() -> None:
    """(not built yet) see CHANGELOG.md."""
    not_built("train", "training issue")

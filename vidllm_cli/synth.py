"""`vidllm synth`: not built yet (synthrooms issue)."""

from vidllm_cli.common import not_built


def command() -> None:
    """(not built yet) see CHANGELOG.md."""
    not_built("synth", "synthrooms issue")

"""Files shipped inside the package: the trained demo model (`demo/`: config.json, model.safetensors, tokenizer/),
the default `--model` of every command (issue 7; training recipe in docs/training.md, "Demo model")."""

from __future__ import annotations

from pathlib import Path

DEMO_MODEL_DIR = Path(__file__).resolve().parent / "demo"


def default_model_dir() -> Path | None:
    """The shipped demo model directory, or None when this install has none (e.g. a checkout without weights)."""
    d = DEMO_MODEL_DIR
    if (d / "config.json").is_file() and (d / "model.safetensors").is_file():
        return d
    return None

"""`vidllm distill`: Stage 1 dual-teacher distillation of the encoder and Cross-Task Adapter (Sec. 3.4, Eq. 5-7)
from a YAML recipe; resumable; runs under torchrun."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vidllm_cli.train import run_stage


def command(
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML recipe (configs/distill_*.yaml).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Run directory (default runs/<recipe name>).")] = None,
    resume: Annotated[Optional[Path], typer.Option(help="Continue the run in this directory exactly.")] = None,
    init: Annotated[Optional[Path], typer.Option(help="Start from a model directory of the same preset (`vidllm "
                                                 "init`: its LLM passes through untouched, its teachers.json names "
                                                 "the teachers).")] = None,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", help="Stop after N more steps.")] = None,
    device: Annotated[Optional[str], typer.Option(help="cpu or cuda[:i] (default: cuda when available).")] = None,
    print_hash: Annotated[bool, typer.Option("--print-hash", hidden=True)] = False,
) -> None:
    """Stage 1: distil a geometry teacher (VGGT's DINOv2) and a semantic teacher (CLIP) into encoder + CTA."""
    run_stage("distill", config, out, resume, max_steps, init, device, print_hash)

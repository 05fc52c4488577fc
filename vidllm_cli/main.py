"""The `vidllm` command: one small module per subcommand, registered here (imports stay light for --help)."""

from __future__ import annotations

from typing import Annotated

import typer

from vidllm_cli import ask, caption, distill, eval as eval_cmd, ground, init, prepare, reconstruct, synth, train

app = typer.Typer(
    name="vidllm",
    help="Vid-LLM: metric 3D reconstruction, question answering, captioning and 3D grounding from ordinary video.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help text is plain: rich markup would eat every `[default: ...]` hint as a style tag
)


def _print_version(value: bool) -> None:
    if value:
        from vidllm_core import __version__

        typer.echo(f"vidllm {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                help="Print the installed version and exit.")] = False) -> None:
    """The options of `vidllm` itself (before the command name)."""


def _register(name: str, module, help_text: str) -> None:
    app.command(name, help=help_text)(module.command)


_register("reconstruct", reconstruct, "Reconstruct a video (or image folder) into a metric, coloured point cloud.")
_register("ask", ask, "Answer questions about a video.")
_register("caption", caption, "Describe an object (by box or point) or the whole scene of a video.")
_register("ground", ground, "Find the 3D boxes (metres) of what a sentence refers to in a video.")
_register("init", init, "Write a model directory from a preset and optional public checkpoints.")
_register("synth", synth, "Generate synthrooms: indoor videos with exact 3D ground truth and annotations.")
_register("eval", eval_cmd, "Score predictions (or a model) on a benchmark with the official metric definitions.")
_register("distill", distill, "Stage 1: dual-teacher distillation of the encoder and Cross-Task Adapter.")
_register("train", train, "Stage 2: joint training of all modules.")
app.add_typer(prepare.app, name="prepare", help="Prepare datasets (ScanNet: object boxes, axis alignment, index).")

"""The `vidllm` command: one small module per subcommand, imported only when that subcommand runs (issue 16: a
new process pays for what its command needs; `vidllm --help` lists the commands from the table below)."""

from __future__ import annotations

import importlib
import os
from typing import Annotated

import typer
from typer.core import TyperGroup

# name -> (module in vidllm_cli, one-line help); modules with `command` are commands, with `app` command groups.
COMMANDS: dict[str, tuple[str, str]] = {
    "reconstruct": ("reconstruct", "Reconstruct a video (or image folder) into a metric, coloured point cloud."),
    "ask": ("ask", "Answer questions about a video."),
    "caption": ("caption", "Describe an object (by box or point) or the whole scene of a video."),
    "ground": ("ground", "Find the 3D boxes (metres) of what a sentence refers to in a video."),
    "init": ("init", "Write a model directory from a preset and optional public checkpoints."),
    "synth": ("synth", "Generate synthrooms: indoor videos with exact 3D ground truth and annotations."),
    "eval": ("eval", "Score predictions (or a model) on a benchmark with the official metric definitions."),
    "distill": ("distill", "Stage 1: dual-teacher distillation of the encoder and Cross-Task Adapter."),
    "train": ("train", "Stage 2: joint training of all modules."),
    "prepare": ("prepare", "Prepare datasets (ScanNet: object boxes, axis alignment, index)."),
    "serve": ("serve", "Keep the model loaded in one process and answer many `ask` calls quickly (shell scripts)."),
}


class LazyGroup(TyperGroup):
    """Builds a subcommand's click command on first use, importing only its module."""

    def list_commands(self, ctx: typer.Context) -> list[str]:  # type: ignore[override]
        return list(COMMANDS)

    def get_command(self, ctx: typer.Context, cmd_name: str):  # type: ignore[no-untyped-def,override]
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module_name, help_text = COMMANDS[cmd_name]
            module = importlib.import_module(f"vidllm_cli.{module_name}")
            # A throw-away parent Typer with this app's settings builds the click command, as a registration here
            # would have (plain help text, no completion options).
            parent = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
            if hasattr(module, "app"):
                parent.add_typer(module.app, name=cmd_name, help=help_text)
            else:
                parent.command(cmd_name, help=help_text)(module.command)
                parent.callback()(lambda: None)  # a group, so the command keeps its name
            self.commands[cmd_name] = typer.main.get_command(parent).commands[cmd_name]
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: typer.Context, formatter) -> None:  # type: ignore[no-untyped-def,override]
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_text) for name, (_, help_text) in COMMANDS.items()])


class FastExitTyper(typer.Typer):
    """The console entry point: after the command (outputs flushed, logging shut down) the process ends with
    `os._exit`, skipping the interpreter teardown of torch / transformers (about 1.7 s of CPU on a loaded 2-core
    machine). Every file the commands write is complete by then (atomic writes); no threads are left working.
    VIDLLM_CLEAN_EXIT=1 keeps the normal teardown. Only `app()` exits this way (CliRunner and tests never do)."""

    def __call__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        code: int | str | None = 0
        try:
            super().__call__(*args, **kwargs)
        except SystemExit as exc:
            code = exc.code
        if os.environ.get("VIDLLM_CLEAN_EXIT") == "1":
            raise SystemExit(code)
        import logging
        import sys

        logging.shutdown()
        if isinstance(code, str):  # SystemExit("message") prints the message, exit status 1
            print(code, file=sys.stderr)
            code = 1
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # closed pipe (`vidllm ... | head`): nothing more can be written
                code = code or 1
        os._exit(code or 0)


app = FastExitTyper(
    cls=LazyGroup,
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


def _set_threads(value: int | None) -> int | None:
    """Thread policy of every command that runs a model: --threads, else $VIDLLM_THREADS, else torch's default (all
    cores). Set before torch is imported (OMP_NUM_THREADS), and on torch itself if something imported it already."""
    threads = value
    if threads is None:
        env = os.environ.get("VIDLLM_THREADS", "").strip()
        if env and not (env.isdigit() and int(env) >= 1):
            raise typer.BadParameter(f"VIDLLM_THREADS must be a whole number >= 1, got {env!r}")
        threads = int(env) if env else None
    if threads is not None:
        if threads < 1:
            raise typer.BadParameter("must be >= 1")
        os.environ["OMP_NUM_THREADS"] = str(threads)
        import sys

        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)
    return threads


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the installed version and exit.")] = False,
    threads: Annotated[int | None, typer.Option(
        "--threads", callback=_set_threads, is_eager=True, metavar="N",
        help="CPU threads for the model (default: $VIDLLM_THREADS, else all cores). On a shared machine 1 is "
             "often fastest.")] = None,
) -> None:
    """The options of `vidllm` itself (before the command name)."""

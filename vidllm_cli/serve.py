"""`vidllm serve`: a resident process for shell scripts (issue 16 item 3). `vidllm serve start` loads the model once
and answers over a Unix socket; `vidllm serve ask VIDEO "QUESTION"` is a small client (no torch import) that prints
what `vidllm ask` prints; `vidllm serve stop` ends the server. Library: `vidllm_core.serve`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from vidllm_cli.common import console, fail, user_errors

app = typer.Typer(help="Keep the model loaded in one process and answer many `ask` calls quickly.",
                  no_args_is_help=True, add_completion=False, rich_markup_mode=None)

SocketOpt = Annotated[Optional[Path], typer.Option(
    "--socket", help="Unix socket of the server [default: $VIDLLM_SOCKET, else $XDG_RUNTIME_DIR/vidllm.sock, else "
                     "~/.cache/vidllm/vidllm.sock].")]


def _socket(path: Optional[Path]) -> Path:
    from vidllm_core.serve import default_socket

    return path if path is not None else default_socket()


@app.command("start")
def start(
    model: Annotated[Optional[Path], typer.Option(
        "--model", help="Model directory with an LLM [default: the shipped demo model].")] = None,
    socket_path: SocketOpt = None,
    cache_dir: Annotated[Optional[Path], typer.Option(
        "--cache-dir", help="Scene cache folder [default: ~/.cache/vidllm/scenes].")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Keep scenes in memory only; store nothing.")] = False,
    device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
) -> None:
    """Load the model and answer `vidllm serve ask` requests until `vidllm serve stop` (or Ctrl-C)."""
    from vidllm_cli.scene import load_language_model, open_cache

    if device not in ("cpu", "cuda"):
        fail(f"--device must be cpu or cuda, got '{device}'")
    if cache_dir is not None and no_cache:
        fail("give either --cache-dir or --no-cache, not both")
    path = _socket(socket_path)
    with user_errors():
        from vidllm_core.serve import AskService, check_socket_path, serve

        check_socket_path(path)   # before the model loads
        service = AskService(load_language_model(model, device), open_cache(cache_dir, no_cache), device)
        serve(path, service, ready=lambda: console.print(f"vidllm server ready at {path}", highlight=False))


@app.command("ask")
def ask(
    video: Annotated[Path, typer.Argument(help="Video file, image folder or ScanNet posed-images scene.")],
    question: Annotated[Optional[str], typer.Argument(help="The question.")] = None,
    more: Annotated[Optional[list[str]], typer.Option("--question", "-q",
                                                      help="Another question (repeatable).")] = None,
    situation: Annotated[Optional[str], typer.Option("--situation", help="SQA3D situation text.")] = None,
    socket_path: SocketOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the server's JSON answer on stdout.")] = False,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1, help="Longest answer, in tokens.")] = 32,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0, help="0 = greedy; > 0 samples.")] = 0.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of sampling.")] = 0,
    frames: Annotated[Optional[int], typer.Option("--frames", min=1, help="Frames to sample [default: the "
                                                                           "model's].")] = None,
) -> None:
    """Ask the running server about VIDEO: the answers of `vidllm ask` with the same options."""
    from vidllm_core.serve import request

    questions = ([question] if question is not None else []) + list(more or [])
    if not questions:
        fail("no question given: pass \"QUESTION\" or -q \"QUESTION\"")
    if not video.exists():
        fail(f"video not found: '{video}'")
    payload = {"video": str(video.resolve()), "questions": questions, "situation": situation, "frames": frames,
               "max_new_tokens": max_new_tokens, "temperature": temperature, "seed": seed}
    with user_errors():
        response = request(_socket(socket_path), payload)
    if as_json:
        typer.echo(json.dumps({"video": str(video), **response}))
        return
    answers = response["answers"]
    for a in answers:
        if a["truncated"]:
            console.print(f"warning: the question '{a['question'][:60]}' was cut to the model's limit", style="yellow")
        typer.echo(a["answer"] if len(answers) == 1 else f"Q: {a['question']}\nA: {a['answer']}")


@app.command("stop")
def stop(socket_path: SocketOpt = None) -> None:
    """End the server at --socket (it finishes the request in progress first)."""
    from vidllm_core.serve import request

    with user_errors():
        request(_socket(socket_path), {"stop": True})
    console.print("vidllm server stopped", highlight=False)

"""`vidllm ask`: answer questions about a video's 3D scene (paper Sec. 3.3; ScanQA-style prompt, issue 5 item 4).

One vision pass (reused from the scene cache when the same video, frames and model were seen before) serves every
question of the call; answers are greedy unless `--temperature` > 0, reproducible with `--seed`. `--interactive`
keeps the model and the scene loaded and answers each line of standard input as it arrives (one JSON line per answer
with `--json`), so follow-up questions skip the start-up of a new process.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from vidllm_cli.common import console, fail, read_stdin_line, user_errors
from vidllm_cli.scene import (
    CacheDirOpt,
    DeviceOpt,
    FramesOpt,
    JsonOpt,
    MaxNewOpt,
    MemoryOpt,
    ModelOpt,
    NoCacheOpt,
    SeedOpt,
    TempOpt,
    check_inputs,
    encode,
    load_language_model,
    open_cache,
    read_questions_file,
    warn_truncated,
)


def command(
    video: Annotated[Path, typer.Argument(help="Video file, image folder or ScanNet posed-images scene.")],
    question: Annotated[str | None, typer.Argument(help="The question.")] = None,
    more: Annotated[list[str] | None, typer.Option("--question", "-q", help="Another question (repeatable).")] = None,
    questions_file: Annotated[Path | None, typer.Option("--questions", help="UTF-8 file, one question a line.")] = None,
    situation: Annotated[str | None, typer.Option("--situation", help="SQA3D situation text (where you stand).")] = None,
    interactive: Annotated[bool, typer.Option(
        "--interactive", "-i", help="Then answer each line of stdin as it arrives (JSON lines with --json).")] = False,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
    cache_dir: CacheDirOpt = None,
    no_cache: NoCacheOpt = False,
    max_new_tokens: MaxNewOpt = 32,
    temperature: TempOpt = 0.0,
    seed: SeedOpt = 0,
    frames: FramesOpt = None,
    max_memory_gb: MemoryOpt = None,
    device: DeviceOpt = "cpu",
) -> None:
    """Answer one or more questions about the scene in VIDEO."""
    t_start = time.perf_counter()
    check_inputs(video, model, device, cache_dir, no_cache)
    questions = ([question] if question is not None else []) + list(more or [])
    if questions_file is not None:
        questions += read_questions_file(questions_file)
    if not questions and not interactive:
        fail("no question given: pass \"QUESTION\", -q \"QUESTION\", --questions FILE or --interactive")
    with user_errors():
        from vidllm_core.language.prompts import clean_text
        from vidllm_core.pipelines.language import ask

        for i, q in enumerate(questions):  # empty questions fail before any work
            clean_text(q, "question" if len(questions) == 1 else f"question {i + 1}")
        if situation is not None:
            clean_text(situation, "situation")
        net = load_language_model(model, device)  # type: ignore[arg-type]
        scene = encode(net, video, frames, open_cache(cache_dir, no_cache), device, max_memory_gb)
        options = dict(situation=situation, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
        t = time.perf_counter()
        answers = ask(net, scene.encoding, questions, **options) if questions else []
        answer_s = time.perf_counter() - t
    _warn_truncated(answers, net.language.max_question_tokens)
    if interactive:
        for a in answers:
            _print_answer(a, answer_s / len(answers), as_json)
        _interactive(net, scene.encoding, options, as_json)
        return
    if as_json:
        typer.echo(json.dumps({
            "video": str(video), "cached": scene.cached, "frames": scene.source_frames,
            "answers": [{"question": a.question, "answer": a.answer, "truncated": a.truncated} for a in answers],
            "timings": {"answer_s": round(answer_s, 4), "total_s": round(time.perf_counter() - t_start, 4),
                        **{k: round(v, 4) for k, v in scene.timings.items()}},
        }))
        return
    for a in answers:
        if len(answers) > 1:
            typer.echo(f"Q: {a.question if len(a.question) <= 200 else a.question[:200] + '...'}")
        typer.echo(a.answer if len(answers) == 1 else f"A: {a.answer}")
    console.print(f"{len(answers)} answer(s) in {time.perf_counter() - t_start:.2f} s")


def _warn_truncated(answers: list, limit: int) -> None:
    for i, a in enumerate(answers):
        if a.truncated:
            warn_truncated("question" if len(answers) == 1 else f"question {i + 1}", limit)


def _print_answer(answer, seconds: float, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"question": answer.question, "answer": answer.answer, "truncated": answer.truncated,
                               "answer_s": round(seconds, 4)}))
    else:
        typer.echo(answer.answer)
        console.print(f"({seconds:.2f} s)", style="dim", highlight=False)


def _interactive(net, encoding, options: dict, as_json: bool) -> None:
    """Answer each non-empty stdin line with the loaded model and scene until end of input (or `exit`)."""
    from vidllm_core.errors import VidLLMError
    from vidllm_core.pipelines.language import ask

    tty = sys.stdin.isatty()
    if tty:
        console.print("scene ready: type a question, an empty line or Ctrl-D to stop", style="dim")
    while True:
        if tty:
            console.print("? ", end="", style="bold")
        line = read_stdin_line()
        if not line or (tty and not line.strip()) or line.strip() in ("exit", "quit"):
            return
        if not line.strip():
            continue
        t = time.perf_counter()
        try:
            answers = ask(net, encoding, [line.strip()], **options)
        except VidLLMError as exc:  # a bad line is reported and skipped; the session goes on
            print(f"error: {exc}", file=sys.stderr, flush=True)
            continue
        _warn_truncated(answers, net.language.max_question_tokens)
        _print_answer(answers[0], time.perf_counter() - t, as_json)

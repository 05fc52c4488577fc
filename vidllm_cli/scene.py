"""Shared pieces of `vidllm ask | caption | ground`: model loading, the scene cache options, question input,
generation options, the one-pass scene encoding (issue 5 item 4)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from vidllm_cli.common import console, fail

# Without --model the shipped demo model is used (vidllm_core.assets.default_model_dir); this message is for an
# install that has none.
NO_MODEL_MESSAGE = ("no model given and no shipped demo model in this install: pass --model DIR (a directory "
                    "written by `vidllm init`, e.g. `vidllm init --preset demo -o DIR`, or `vidllm train`)")

ModelOpt = Annotated[Optional[Path], typer.Option(
    "--model", help="Model directory with an LLM (vidllm init / train) [default: the shipped demo model].")]


def resolve_model(model_dir: Optional[Path]) -> Optional[Path]:
    """--model, or the shipped demo model when it is not given (None when this install has none)."""
    if model_dir is not None:
        return model_dir
    from vidllm_core.assets import default_model_dir

    return default_model_dir()
CacheDirOpt = Annotated[Optional[Path], typer.Option("--cache-dir",
                                                     help="Scene cache folder [default: ~/.cache/vidllm/scenes].")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Always run the vision pass; store nothing.")]
FramesOpt = Annotated[Optional[int], typer.Option("--frames", min=1, help="Frames to sample [default: the model's].")]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu or cuda.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
MaxNewOpt = Annotated[int, typer.Option("--max-new-tokens", min=1, help="Longest answer, in tokens.")]
TempOpt = Annotated[float, typer.Option("--temperature", min=0.0, help="0 = greedy (default); > 0 samples.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of sampling (same seed, same answer).")]


def check_inputs(video: Path, model_dir: Optional[Path], device: str, cache_dir: Optional[Path],
                 no_cache: bool) -> None:
    """Fail (one line) before any work on a missing model / video, a bad device or contradictory cache options."""
    model_dir = resolve_model(model_dir)
    if model_dir is None:
        fail(NO_MODEL_MESSAGE)
    if not model_dir.is_dir():
        fail(f"model directory not found: '{model_dir}'")
    if not video.exists():
        fail(f"video not found: '{video}'")
    if device not in ("cpu", "cuda"):
        fail(f"--device must be cpu or cuda, got '{device}'")
    if cache_dir is not None and no_cache:
        fail("give either --cache-dir or --no-cache, not both")


def quiet_transformers() -> None:
    """Only errors from transformers (no generation-config chatter on the console)."""
    import logging

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("transformers").setLevel(logging.ERROR)


def load_language_model(model_dir: Path, device: str) -> Any:
    """A `VidLLM` with its language branch on `device` (tests replace this); errors are one line."""
    import torch

    from vidllm_core.models.vidllm import VidLLM
    from vidllm_core.pipelines.language import require_language

    if device == "cuda" and not torch.cuda.is_available():
        fail("--device cuda was asked for but no CUDA device is available")
    resolved = resolve_model(model_dir)
    if resolved is None:
        fail(NO_MODEL_MESSAGE)
    quiet_transformers()
    model = VidLLM.from_pretrained(resolved, device=device)
    require_language(model)
    if not model.config.trained:
        print(f"warning: {resolved} is an untrained model (written by `vidllm init`, config.json \"trained\": false); "
              "its outputs mean nothing until it is trained", file=sys.stderr, flush=True)
    return model


def open_cache(cache_dir: Optional[Path], no_cache: bool) -> Any:
    from vidllm_core.language.cache import SceneCache

    return None if no_cache else SceneCache(cache_dir)


MemoryOpt = Annotated[Optional[float], typer.Option(
    "--max-memory-gb", help="Peak memory budget of the vision pass: a long video is encoded in overlapping chunks "
    "aligned into one scene (not cached) [default: one pass].")]


def encode(model: Any, video: Path, frames: Optional[int], cache: Any, device: str,
           max_memory_gb: Optional[float] = None) -> Any:
    """`run_vision_pass` (with tokens; chunked within `max_memory_gb` when given) with a status line; prints whether
    the cache was used."""
    from vidllm_core.pipelines.vision_pass import run_vision_pass

    with console.status(f"reading and encoding {video}"):
        if max_memory_gb is None:
            scene = run_vision_pass(model, video, num_frames=frames, tokens=True, cache=cache, device=device)
        else:
            from vidllm_core.pipelines.chunked_pass import ChunkOptions, run_chunked_vision_pass

            scene, chunks = run_chunked_vision_pass(model, video, num_frames=frames, tokens=True, device=device,
                                                    options=ChunkOptions(None, 4, max_memory_gb, "sim3"))
            console.print(f"{len(chunks)} chunk(s) within {max_memory_gb:g} GB")
    where = "from the scene cache" if scene.cached else f"{len(scene.source_frames)} frames, vision pass " \
        f"{scene.timings.get('network_s', 0.0):.2f} s"
    console.print(f"scene: {scene.encoding.tokens.shape[0]} 3D tokens ({where})")
    return scene


def read_questions_file(path: Path) -> list[str]:
    """One question per non-empty line of a UTF-8 text file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        fail(f"questions file not found: '{path}'")
    except IsADirectoryError:
        fail(f"questions file '{path}' is a folder")
    except OSError as exc:
        fail(f"cannot read questions file '{path}': {exc.strerror or exc}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        fail(f"questions file '{path}' is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})")
    return [line.strip() for line in text.splitlines() if line.strip()]


def warn_truncated(what: str, limit: int) -> None:
    console.print(f"warning: the {what} is longer than {limit} tokens and was cut to {limit}", style="yellow",
                  highlight=False)


def parse_numbers(text: str, count: int, option: str) -> list[float]:
    """`1,2.5,-3` -> floats; exactly `count` finite numbers or one error line."""
    import math

    parts = [p for p in text.replace(" ", ",").split(",") if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        fail(f"{option} needs {count} comma-separated numbers, got '{text}'")
    if len(values) != count or not all(math.isfinite(v) for v in values):
        fail(f"{option} needs {count} finite comma-separated numbers, got '{text}'")
    return values

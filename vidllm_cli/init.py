"""`vidllm init`: write a model directory (config.json + model.safetensors [+ tokenizer/]) from a preset and public
checkpoints; `--llm DIR` brings any local Hugging Face causal LM with its tokenizer (paper Sec. 3.3)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vidllm_cli.common import console, fail, user_errors


def command(
    output: Annotated[Path, typer.Option("--output", "-o", help="Model directory to write.")],
    preset: Annotated[str, typer.Option(help="Model size: tiny (tests), demo, paper (DINOv2-L + VGGT-1B).")] = "tiny",
    vggt: Annotated[Optional[Path], typer.Option(help="Official VGGT checkpoint (model.pt / .safetensors).")] = None,
    dinov2: Annotated[Optional[Path], typer.Option(help="Hugging Face DINOv2(-with-registers) directory.")] = None,
    llm: Annotated[Optional[Path], typer.Option(help="Local Hugging Face causal-LM directory (weights + tokenizer) "
                                                     "[default: tiny/demo build a random LLM; paper needs --llm to train language tasks].")] = None,
    clip: Annotated[Optional[Path], typer.Option(help="Hugging Face CLIP vision directory: Stage 1's semantic "
                                                      "teacher, recorded in teachers.json with --vggt.")] = None,
    no_llm: Annotated[bool, typer.Option("--no-llm", help="Vision-only model (reconstruction, no ask/ground).")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the random initialisation of parts not loaded.")] = 0,
    force: Annotated[bool, typer.Option(help="Overwrite an existing model directory.")] = False,
) -> None:
    """Assemble a model directory; parts without a checkpoint get seeded random weights."""
    if (output / "model.safetensors").exists() and not force:
        fail(f"{output} already holds a model; pass --force to overwrite it")
    if llm is not None and no_llm:
        fail("give either --llm or --no-llm, not both")
    if llm is not None and not llm.is_dir():
        fail(f"LLM directory not found: '{llm}'")
    if clip is not None and not clip.is_dir():
        fail(f"CLIP directory not found: '{clip}'")
    with user_errors():
        from vidllm_core.io import check_not_inputs, check_output

        check_output(output, "-o")  # before the (possibly long) build
        check_not_inputs([("-o", output)], [(name, path) for name, path in (("--llm", llm), ("--dinov2", dinov2),
                                                                            ("--clip", clip)) if path is not None])
        import logging

        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        logging.getLogger("transformers").setLevel(logging.ERROR)
        from vidllm_core.config import VidLLMConfig
        from vidllm_core.models.build import build_model

        config = VidLLMConfig.from_name(preset).replace(trained=False)  # config.json says so; ask etc. warn
        with console.status(f"building the {preset} model"):
            model, notes = build_model(config, vggt=vggt, dinov2=dinov2, seed=seed, llm=llm, language=not no_llm)
        from vidllm_core.training.stage1 import record_teachers

        try:
            model.save_pretrained(output)
            if record_teachers(output, vggt, clip):
                notes.append(f"Stage-1 teachers recorded in {output / 'teachers.json'}")
        except OSError as exc:
            fail(f"cannot write {output}: {exc.strerror or exc}")
    for line in notes:
        console.print(line)
    n_params = sum(p.numel() for p in model.parameters())
    console.print(f"wrote {output} ({preset}, {n_params / 1e6:.2f} M parameters; untrained: its answers mean nothing "
                  "until `vidllm distill` / `vidllm train` have trained it)")

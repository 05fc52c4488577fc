"""`vidllm train`: Stage 2 joint training (Sec. 3.4, Eq. 8-9) from a YAML recipe; resumable; runs under torchrun.

`run_stage` is shared with `vidllm distill` (Stage 1).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from vidllm_cli.common import console, fail, user_errors


_WRITE_ERRORS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EIO}


def _format(rec: dict, total: int) -> str:
    keys = [k for k in rec if k not in ("step", "loss", "lr", "grad_norm", "step_time_s", "epoch")
            and "_" not in k][:6]
    parts = " ".join(f"{k} {rec[k]:.4f}" for k in keys)
    return (f"step {rec['step']:>6}/{total}  loss {rec['loss']:.5f}  {parts}  lr {rec['lr']:.2e}  "
            f"{rec['step_time_s']:.2f}s")


def run_stage(stage: str, config: Optional[Path], out: Optional[Path], resume: Optional[Path],
              max_steps: Optional[int], init: Optional[Path], device: Optional[str], print_hash: bool) -> None:
    """Parse the recipe, build the stage, train, checkpoint; one `error:` line for any bad input."""
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    with user_errors(), contextlib.ExitStack() as held:  # the lock is released before an error line is printed
        from vidllm_core.errors import ConfigError
        from vidllm_core.training.common import RECIPE_FILE, latest_checkpoint, setup_distributed
        from vidllm_core.training.recipe import Recipe

        if config is None and resume is None:
            raise ConfigError("give --config RECIPE.yaml (or --resume RUN_DIR to continue a run)")
        if resume is not None and out is not None and out.resolve() != resume.resolve():
            raise ConfigError("--out and --resume name different directories; --resume continues in place")
        if config is not None:
            recipe = Recipe.from_file(config)
        else:
            assert resume is not None
            recipe = Recipe.from_file(latest_checkpoint(resume) / RECIPE_FILE)
        if recipe.stage != stage:
            raise ConfigError(f"recipe stage is {recipe.stage!r}; use `vidllm {'distill' if recipe.stage == 'distill' else 'train'}`")
        if init is not None:
            recipe = recipe.replace(init=str(init.resolve()))
        if max_steps is not None and max_steps < 1:
            raise ConfigError("--max-steps must be >= 1")
        out_dir = resume if resume is not None else (out or Path("runs") / (config.stem if config else stage))
        if int(os.environ.get("RANK", "0")) == 0:  # rank 0 owns the folder (torchrun ranks share it)
            from vidllm_core.io import check_output, run_lock
            from vidllm_core.training.common import remove_partial_checkpoints

            check_output(out_dir, "--resume" if resume is not None else "--out")
            held.enter_context(run_lock(out_dir))
            for stale in remove_partial_checkpoints(out_dir):
                console.print(f"removed {stale}, left unfinished by an interrupted save", markup=False,
                              highlight=False)
        import torch

        from vidllm_core.training import common

        dist = setup_distributed(device)
        common.check_device_support(recipe.train, dist.device)  # FSDP / bf16 without CUDA: one line, nothing run
        if dist.is_main:
            console.print(f"[bold]vidllm {stage}[/]: preset {recipe.model.preset}, {recipe.train.steps} steps, "
                          f"world size {dist.world_size}, device {dist.device}, out {out_dir}")
        if stage == "distill":
            from vidllm_core.training import stage1 as stage_mod
        else:
            from vidllm_core.training import stage2 as stage_mod  # type: ignore[no-redef]
        run = stage_mod.setup(recipe, out_dir, dist, resume=resume is not None)
        if resume is not None and dist.is_main:
            console.print(f"resumed at step {run.state.step} (epoch {run.state.epoch})")
        try:
            common.fit(run, max_steps=max_steps, log=lambda r: console.print(
                _format(r, recipe.train.steps), soft_wrap=True, highlight=False))
        except OSError as exc:
            if exc.errno not in _WRITE_ERRORS:
                raise
            kept = common.latest_pointer_text(Path(out_dir))
            fail(f"cannot write to {out_dir}: {exc.strerror or exc}; "
                 + (f"the last complete checkpoint {kept} is kept" if kept else "no checkpoint had been saved"))
        if print_hash:
            print(f"rank {dist.rank} sha256 {common.state_hash(run.module)}", flush=True)
        if dist.is_main:
            console.print(f"saved step {run.state.step} to {out_dir}")
        del torch
    if distributed:  # STACK.md sec. 4: avoid gloo's SIGABRT at interpreter exit
        from vidllm_core.training.common import teardown_distributed

        teardown_distributed()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def command(
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML recipe (configs/train_*.yaml).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Run directory (default runs/<recipe name>).")] = None,
    resume: Annotated[Optional[Path], typer.Option(help="Continue the run in this directory exactly.")] = None,
    init: Annotated[Optional[Path], typer.Option(help="Start from a Stage-1 output or a model directory.")] = None,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", help="Stop after N more steps.")] = None,
    device: Annotated[Optional[str], typer.Option(help="cpu or cuda[:i] (default: cuda when available).")] = None,
    print_hash: Annotated[bool, typer.Option("--print-hash", hidden=True)] = False,
) -> None:
    """Stage 2: train all modules with reconstruction, metric-depth and (with a language branch) VL losses."""
    run_stage("train", config, out, resume, max_steps, init, device, print_hash)

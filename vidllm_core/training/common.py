"""Training machinery shared by both stages (Vid-LLM Sec. 3.4 / 4.1: AdamW 0.9/0.999, wd 0.05, clip 1.0; VGGT.md
sec. 8: linear warm-up + cosine, bf16 AMP): parameter groups, schedule, seeding, distributed setup (torchrun: DDP
gloo/nccl, FSDP), metrics, atomic checkpoints with exact resume, and the generic `fit` loop.

Everything is a plain function over explicit state; the library prints nothing (the CLI passes a `log` callback).
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from vidllm_core.errors import CheckpointError, ConfigError, VidLLMError
from vidllm_core.io import check_output, storage_errors, write_text_atomic
from vidllm_core.training.recipe import ParamGroupSpec, Recipe

STATE_FILE = "trainer_state.pt"
EXTRA_FILE = "extra.safetensors"
RECIPE_FILE = "recipe.json"
METRICS_FILE = "metrics.jsonl"
LATEST_FILE = "latest"
CKPT_DIR = "checkpoints"
KEEP_LAST = 2


class NonFiniteLossError(VidLLMError):
    """The loss became NaN or infinite; training stopped, the last good checkpoint is kept."""


# ---- seeding, devices, distributed ----------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@dataclass(frozen=True)
class DistInfo:
    """Process layout: rank / world size from torchrun's environment; world 1 = a plain single process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_distributed(device: str | None = None) -> DistInfo:
    """Initialise the process group when launched by torchrun (WORLD_SIZE > 1): nccl on CUDA, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return DistInfo(rank, world, local, device)


def teardown_distributed() -> None:
    """Destroy the process group (call before exiting; STACK.md sec. 4: then flush and `os._exit(0)`)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _all_true(flag: bool, dist_info: DistInfo) -> bool:
    if not dist_info.distributed:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=dist_info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item() > 0.5)


def check_device_support(train: Any, device: str) -> None:
    """Refuse, before anything is built or written, what cannot run on `device` (one ConfigError line)."""
    cuda = device.startswith("cuda")
    if train.strategy == "fsdp" and not cuda:
        raise ConfigError("train.strategy fsdp needs CUDA GPUs (torchrun on GPUs); use strategy: ddp on CPU")
    if train.precision == "bf16" and not cuda:
        raise ConfigError("train.precision bf16 needs a CUDA device (use auto or fp32 on CPU)")
    if train.llm_dtype == "bf16" and not cuda:
        raise ConfigError("train.llm_dtype bf16 needs a CUDA device (use fp32 on CPU)")


def block_classes(module: nn.Module) -> set[type[nn.Module]]:
    """The transformer-block classes of a Vid-LLM training module: `layers.block.Block` (encoder, adapter,
    aggregator, camera head) and the LLM's decoder layer (Hugging Face `_no_split_modules`)."""
    from vidllm_core.layers.block import Block

    classes: set[type[nn.Module]] = {Block}
    names: set[str] = set()
    for m in module.modules():
        names.update(getattr(m, "_no_split_modules", None) or ())
    classes.update(type(m) for m in module.modules() if type(m).__name__ in names)
    return classes


def apply_activation_checkpointing(module: nn.Module) -> int:
    """Recompute every transformer block in the backward pass (non-reentrant checkpoint wrapper); returns how many
    blocks were wrapped. Parameter names gain `_checkpoint_wrapped_module.` (stripped by `_clean_name`)."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (CheckpointImpl,
                                                                             apply_activation_checkpointing as apply,
                                                                             checkpoint_wrapper)

    classes = tuple(block_classes(module))
    count = sum(isinstance(m, classes) for m in module.modules())
    apply(module, checkpoint_wrapper_fn=lambda m: checkpoint_wrapper(m, checkpoint_impl=CheckpointImpl.NO_REENTRANT),
          check_fn=lambda m: isinstance(m, classes))
    return count


def wrap_distributed(module: nn.Module, dist_info: DistInfo, strategy: str,
                     find_unused: bool = False, activation_checkpointing: bool = False) -> nn.Module:
    """DDP (default) or FSDP when world > 1, with activation checkpointing of every transformer block as a recipe
    switch. FSDP shards one unit per transformer block (`block_classes`) plus the root, with `use_orig_params=True`
    so name-pattern groups and frozen parameters keep working; the checkpoint wrapper goes inside each FSDP unit
    (wrap first, then checkpoint), so a recomputed block does not gather its parameters twice."""
    fsdp = dist_info.distributed and strategy == "fsdp"
    if activation_checkpointing and not fsdp:
        apply_activation_checkpointing(module)
    if not dist_info.distributed:
        return module
    if fsdp:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        from torch.distributed.fsdp.wrap import ModuleWrapPolicy

        kwargs: dict[str, Any] = {"use_orig_params": True, "auto_wrap_policy": ModuleWrapPolicy(block_classes(module))}
        if dist_info.device.startswith("cuda"):
            kwargs["device_id"] = torch.device(dist_info.device)
        wrapped = FSDP(module, **kwargs)
        if activation_checkpointing:
            apply_activation_checkpointing(wrapped)
        return wrapped
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [torch.device(dist_info.device)] if dist_info.device.startswith("cuda") else None
    return DDP(module, device_ids=ids, find_unused_parameters=find_unused)


def autocast(precision: str, device: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (precision auto / bf16); fp32 otherwise. bf16 on CPU is refused (ConfigError)."""
    if precision == "bf16" and not device.startswith("cuda"):
        raise ConfigError("train.precision bf16 needs a CUDA device (use auto or fp32 on CPU)")
    if device.startswith("cuda") and precision in ("auto", "bf16"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# ---- optimiser ------------------------------------------------------------------------------------------------
def _no_decay(name: str, p: nn.Parameter) -> bool:
    """Biases, norms, LayerScale gammas and learned tokens / position embeddings get no weight decay."""
    return p.ndim < 2 or any(k in name for k in ("token", "pos_embed", "norm"))


def _clean_name(name: str) -> str:
    """Parameter name without DDP / FSDP / activation-checkpoint wrapper prefixes."""
    name = name.removeprefix("module.")
    for wrapper in ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module."):
        name = name.replace(wrapper, "")
    return name


def build_param_groups(module: nn.Module, base_lr: float, weight_decay: float,
                       groups: Sequence[ParamGroupSpec] = (), trainable: Sequence[str] | None = None
                       ) -> list[dict[str, Any]]:
    """AdamW parameter groups by fnmatch name patterns. The first matching `groups` entry decides a parameter's lr
    (or freezes it); `trainable` (patterns) freezes every parameter that matches none. Frozen parameters get
    `requires_grad=False` and no group. Each (lr, decay) pair becomes one group named `lr=..., decay=...`."""
    buckets: dict[tuple[float, bool], list[nn.Parameter]] = {}
    names: dict[tuple[float, bool], list[str]] = {}
    for raw_name, p in module.named_parameters():
        name = _clean_name(raw_name)
        if not p.requires_grad:
            continue
        if trainable is not None and not any(fnmatch.fnmatchcase(name, pat) for pat in trainable):
            p.requires_grad_(False)
            continue
        lr = base_lr
        for g in groups:
            if any(fnmatch.fnmatchcase(name, pat) for pat in g.patterns):
                if g.freeze:
                    p.requires_grad_(False)
                lr = g.lr if g.lr > 0 else base_lr
                break
        if not p.requires_grad:
            continue
        key = (lr, not _no_decay(name, p))
        buckets.setdefault(key, []).append(p)
        names.setdefault(key, []).append(name)
    if not buckets:
        raise ConfigError("no trainable parameter left after applying the freezing patterns")
    return [{"params": ps, "lr": lr, "weight_decay": weight_decay if decay else 0.0,
             "name": f"lr={lr:g},decay={decay}", "param_names": names[(lr, decay)]}
            for (lr, decay), ps in buckets.items()]


def build_optimizer(module: nn.Module, recipe: Recipe, trainable: Sequence[str] | None = None
                    ) -> torch.optim.AdamW:
    o = recipe.optim
    groups = build_param_groups(module, o.lr, o.weight_decay, o.groups, trainable)
    return torch.optim.AdamW(groups, lr=o.lr, betas=(float(o.betas[0]), float(o.betas[1])),
                             weight_decay=o.weight_decay)


def lr_multiplier(step: int, total: int, warmup_ratio: float, min_ratio: float) -> float:
    """Linear warm-up over ceil(warmup_ratio * total) steps (from 1/warmup), then cosine from 1 to `min_ratio`."""
    warm = math.ceil(warmup_ratio * total)
    if warm > 0 and step < warm:
        return (step + 1) / warm
    span = max(total - warm, 1)
    progress = min(max(step - warm, 0) / span, 1.0)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, recipe: Recipe) -> torch.optim.lr_scheduler.LambdaLR:
    o, total = recipe.optim, recipe.train.steps
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_multiplier(s, total, o.warmup_ratio, o.min_lr_ratio))


# ---- data order -----------------------------------------------------------------------------------------------
@dataclass
class TrainState:
    """Where the run stands: optimiser steps done, data epoch and batches consumed in it."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0


def epoch_batches(num_items: int, batch_size: int, epoch: int, seed: int, dist_info: DistInfo) -> list[list[int]]:
    """This rank's batches for `epoch`: DistributedSampler order (shuffled by seed + epoch, padded to the world
    size) cut into full batches. Deterministic, so a resumed run skips exactly the batches already consumed."""
    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(range(num_items), num_replicas=dist_info.world_size, rank=dist_info.rank,
                                 shuffle=True, seed=seed, drop_last=False)
    sampler.set_epoch(epoch)
    order = list(sampler)
    if len(order) < batch_size:
        order = (order * math.ceil(batch_size / max(len(order), 1)))[:batch_size]
    return [order[i:i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]


def batch_stream(dataset: Any, state: TrainState, batch_size: int, seed: int, dist_info: DistInfo,
                 collate: Callable, num_workers: int = 0) -> Iterator[dict[str, Any]]:
    """Endless batches from `state` on; advances `state.epoch` / `state.batch_in_epoch` as it yields."""
    from torch.utils.data import DataLoader

    while True:
        batches = epoch_batches(len(dataset), batch_size, state.epoch, seed, dist_info)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(state.epoch)
        remaining = batches[state.batch_in_epoch:]
        loader = DataLoader(dataset, batch_sampler=remaining, collate_fn=collate, num_workers=num_workers)
        for batch in loader:
            state.batch_in_epoch += 1
            yield batch
        state.epoch += 1
        state.batch_in_epoch = 0


# ---- metrics --------------------------------------------------------------------------------------------------
class MetricsLog:
    """Appends one JSON line per logged step to OUT/metrics.jsonl (rank 0) and to TensorBoard when installed."""

    def __init__(self, out_dir: Path, enabled: bool, resume_step: int | None = None) -> None:
        self.path = out_dir / METRICS_FILE
        self.enabled = enabled
        self.tb = None
        if not enabled:
            return
        if resume_step is not None and self.path.is_file():  # drop lines after the resumed checkpoint
            lines = [ln for ln in self.path.read_text(encoding="utf-8").splitlines()
                     if ln.strip() and json.loads(ln).get("step", 0) <= resume_step]
            write_text_atomic(self.path, "".join(ln + "\n" for ln in lines))
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out_dir / "tensorboard"))
        except ImportError:
            self.tb = None

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k != "step":
                    self.tb.add_scalar(k, v, record["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


# ---- checkpoints ----------------------------------------------------------------------------------------------
def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "python": [list(random.getstate()[1]), random.getstate()[0]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    random.setstate((state["python"][1], tuple(state["python"][0]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def full_state_dicts(module: nn.Module, optimizer: torch.optim.Optimizer, strategy: str
                     ) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(model state, optimizer state) of the unwrapped training module, gathered in full on CPU (FSDP aware)."""
    if strategy == "fsdp" and not isinstance(module, (nn.parallel.DistributedDataParallel,)) and \
            type(module).__name__ == "FullyShardedDataParallel":
        from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                             get_optimizer_state_dict)

        opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_model_state_dict(module, options=opts), get_optimizer_state_dict(module, optimizer, options=opts)
    inner = module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module
    return ({k: v.detach().cpu() for k, v in inner.state_dict().items()}, optimizer.state_dict())


def load_full_state(module: nn.Module, optimizer: torch.optim.Optimizer, model_sd: dict[str, Tensor],
                    optim_sd: dict[str, Any], strategy: str) -> None:
    if type(module).__name__ == "FullyShardedDataParallel":
        from torch.distributed.checkpoint.state_dict import (StateDictOptions, set_model_state_dict,
                                                             set_optimizer_state_dict)

        opts = StateDictOptions(full_state_dict=True)
        set_model_state_dict(module, model_sd, options=opts)
        set_optimizer_state_dict(module, optimizer, optim_sd, options=opts)
        return
    from vidllm_core.models.vidllm import load_weights

    inner = module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module
    load_weights(inner, model_sd, "the checkpoint")  # strict; refills tied weights (LLM head) stored once
    optimizer.load_state_dict(optim_sd)


def save_checkpoint(out_dir: Path, *, model_state: dict[str, Tensor], config_json: str,
                    optimizer_state: dict[str, Any], scheduler_state: dict[str, Any], state: TrainState,
                    recipe_json: str, extra_files: dict[str, Path] | None = None, preset: str = "",
                    carried: dict[str, Tensor] | None = None) -> Path:
    """Write `checkpoints/step-N/` (config.json, model.safetensors [`model.*` keys, prefix dropped], extra.safetensors
    [every other key], trainer_state.pt) into a temporary folder, rename it into place, then point `latest` at it
    (atomic) and prune older checkpoints. The model files are also refreshed at OUT's top level, so OUT is a model
    directory. `carried`: model tensors this run does not build (the LLM through Stage 1), written unchanged into
    model.safetensors. On any error (disk full, read-only) the temporary folder is removed and older checkpoints
    remain."""
    from safetensors.torch import save_file

    from vidllm_core.models.vidllm import weights_for_saving

    ckpt_root = out_dir / CKPT_DIR
    ckpt_root.mkdir(parents=True, exist_ok=True)
    name = f"step-{state.step:08d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=ckpt_root))
    try:
        model_keys = weights_for_saving({k[len("model."):]: v for k, v in model_state.items() if k.startswith("model.")})
        model_keys.update(carried or {})
        extra = {k: v.contiguous() for k, v in model_state.items() if not k.startswith("model.")}
        meta = {"format": "pt", "vidllm_preset": preset}
        save_file(model_keys, str(tmp / "model.safetensors"), metadata=meta)
        if extra:
            save_file(extra, str(tmp / EXTRA_FILE), metadata=meta)
        (tmp / "config.json").write_text(config_json + "\n", encoding="utf-8")
        (tmp / RECIPE_FILE).write_text(recipe_json + "\n", encoding="utf-8")
        with open(tmp / STATE_FILE, "wb") as fh:  # a file object keeps the OSError (disk full) in the chain
            torch.save({"optimizer": optimizer_state, "scheduler": scheduler_state, "state": asdict(state),
                        "rng": _rng_state(), "preset": preset}, fh)
        for rel, src in (extra_files or {}).items():
            dst = tmp / rel
            if src.is_dir():
                shutil.copytree(src, dst)
            else:
                shutil.copy2(src, dst)
        final = ckpt_root / name
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_text_atomic(out_dir / LATEST_FILE, f"{CKPT_DIR}/{name}\n")
    _publish_model(final, out_dir)
    for old in sorted(p for p in ckpt_root.glob("step-*") if p.name != name)[:-(KEEP_LAST - 1) or None]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _publish_model(ckpt: Path, out_dir: Path) -> None:
    from vidllm_core.io import atomic_path

    for fname in ("model.safetensors", "config.json"):
        with atomic_path(out_dir / fname) as tmp:
            shutil.copyfile(ckpt / fname, tmp)


def remove_partial_checkpoints(out_dir: Path) -> list[Path]:
    """Delete what a save killed midway left in a run folder (`checkpoints/.tmp-step-*` folders, the hidden
    temporary files of `latest`, `metrics.jsonl` and the published model files); returns what was removed. Call it
    only while holding the run folder's lock (another process's save in progress looks the same)."""
    out_dir = Path(out_dir)
    stale = sorted((out_dir / CKPT_DIR).glob(".tmp-step-*"))
    for name in (LATEST_FILE, "model.safetensors", "config.json", METRICS_FILE):
        stale += sorted(out_dir.glob(f".{name}.*"))
    for p in stale:
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()
    return stale


def latest_checkpoint(out_dir: str | Path) -> Path:
    """The checkpoint folder `OUT/latest` points at; CheckpointError when the run has none."""
    out_dir = Path(out_dir)
    pointer = out_dir / LATEST_FILE
    if not out_dir.is_dir():
        raise CheckpointError(f"--resume: run directory not found: {out_dir}")
    if not pointer.is_file():
        raise CheckpointError(f"--resume: {out_dir} holds no checkpoint (no '{LATEST_FILE}' file)")
    ckpt = out_dir / pointer.read_text(encoding="utf-8").strip()
    if not (ckpt / STATE_FILE).is_file() or not (ckpt / "model.safetensors").is_file():
        raise CheckpointError(f"--resume: checkpoint {ckpt} is incomplete")
    return ckpt


def read_checkpoint(ckpt: Path) -> tuple[dict[str, Tensor], dict[str, Any], str]:
    """(training-module state with `model.` prefixes restored, trainer state, config.json text)."""
    from safetensors.torch import load_file

    try:
        sd = {f"model.{k}": v for k, v in load_file(str(ckpt / "model.safetensors")).items()}
        if (ckpt / EXTRA_FILE).is_file():
            sd.update(load_file(str(ckpt / EXTRA_FILE)))
        trainer = torch.load(ckpt / STATE_FILE, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any reader failure is one line
        raise CheckpointError(f"cannot read checkpoint {ckpt}: {str(exc).splitlines()[0] if str(exc) else exc}") \
            from None
    return sd, trainer, (ckpt / "config.json").read_text(encoding="utf-8")


def check_same_config(config_json: str, expected: Any, where: str) -> None:
    """Refuse a checkpoint whose model config differs from the recipe's (e.g. another preset)."""
    from vidllm_core.config import VidLLMConfig

    try:
        found = VidLLMConfig.from_dict(json.loads(config_json))
    except (json.JSONDecodeError, VidLLMError) as exc:
        raise CheckpointError(f"{where}: unreadable config.json ({exc})") from None
    found_arch, expected_arch = found.architecture(), expected.architecture()  # `trained` may differ (--init)
    if found_arch != expected_arch:
        diff = sorted(k for k in expected_arch if found_arch.get(k) != expected_arch[k])
        raise CheckpointError(f"{where} was trained with model preset {found.name!r}, but the recipe builds "
                              f"{expected.name!r} (differs in: {', '.join(diff)})")


def prepare_out_dir(out_dir: Path, resume: bool) -> None:
    """Create OUT (checking it is writable); refuse to overwrite an existing run unless resuming."""
    if not resume and (out_dir / LATEST_FILE).exists():
        raise ConfigError(f"{out_dir} already holds a training run; resume it with --resume {out_dir} or choose "
                          f"another --out")
    check_output(out_dir, "--out")
    out_dir.mkdir(parents=True, exist_ok=True)


# ---- the loop -------------------------------------------------------------------------------------------------
LossFn = Callable[[dict[str, Any]], tuple[Tensor, dict[str, Tensor]]]


@dataclass
class Run:
    """Everything `fit` needs: the (wrapped) training module whose forward(batch) gives (total, parts), its
    optimizer / scheduler, the data, and where to write."""

    module: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    dataset: Any
    collate: Callable
    recipe: Recipe
    out_dir: Path
    dist: DistInfo
    config_json: str
    state: TrainState = field(default_factory=TrainState)
    extra_files: dict[str, Path] = field(default_factory=dict)
    to_device: Callable[[dict[str, Any]], dict[str, Any]] = lambda b: b
    carry: "CarriedWeights | None" = None


@dataclass(frozen=True)
class CarriedWeights:
    """Model tensors a stage keeps without building them (Stage 1 carries the LLM of its `--init` directory):
    every key of `source` (a model.safetensors) starting with `prefix`, re-read at each save."""

    source: Path
    prefix: str

    def keys(self) -> list[str]:
        from safetensors import safe_open

        with safe_open(str(self.source), framework="pt") as f:
            return [k for k in f.keys() if k.startswith(self.prefix)]

    def load(self) -> dict[str, Tensor]:
        from safetensors import safe_open

        with safe_open(str(self.source), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys() if k.startswith(self.prefix)}


def restore(run: Run, ckpt: Path) -> None:
    """Load module, optimizer, scheduler, data-order and RNG state from a checkpoint folder (exact resume)."""
    model_sd, trainer, _ = read_checkpoint(ckpt)
    if run.carry is not None:  # carried tensors are not part of the training module
        model_sd = {k: v for k, v in model_sd.items() if not k.startswith(f"model.{run.carry.prefix}")}
    try:
        load_full_state(run.module, run.optimizer, model_sd, trainer["optimizer"], run.recipe.train.strategy)
    except (RuntimeError, ValueError, KeyError, CheckpointError) as exc:
        raise CheckpointError(f"--resume: {ckpt} does not match this run: {str(exc).splitlines()[0]}") from None
    run.scheduler.load_state_dict(trainer["scheduler"])
    run.state = TrainState(**trainer["state"])
    _set_rng_state(trainer["rng"])


def checkpoint(run: Run) -> Path | None:
    """Save (rank 0 writes; every rank takes part in FSDP gathers)."""
    model_sd, optim_sd = full_state_dicts(run.module, run.optimizer, run.recipe.train.strategy)
    path = None
    if run.dist.is_main:
        with storage_errors(run.out_dir / CKPT_DIR):  # a full disk is one OSError, whatever the writer raised
            path = save_checkpoint(run.out_dir, model_state=model_sd, config_json=run.config_json,
                                   optimizer_state=optim_sd, scheduler_state=run.scheduler.state_dict(),
                                   state=run.state, recipe_json=run.recipe.to_json(), extra_files=run.extra_files,
                                   preset=run.recipe.model.preset,
                                   carried=run.carry.load() if run.carry is not None else None)
    if run.dist.distributed:
        import torch.distributed as dist

        dist.barrier()
    return path


def fit(run: Run, max_steps: int | None = None, log: Callable[[dict[str, Any]], None] | None = None,
        loss_hook: Callable[[int, Tensor], Tensor] | None = None) -> TrainState:
    """Train until `recipe.train.steps` (or `max_steps` more steps in this call). Gradient accumulation over
    `grad_accum` micro-batches (DDP gradient sync only on the last), clipping, one scheduler step per optimiser
    step, metrics every `log_every`, a checkpoint every `save_every` and at the end. A non-finite loss (on any
    rank) stops the run before the update with `NonFiniteLossError` naming the step; nothing is saved then, so
    the last good checkpoint stays. `loss_hook(step, loss)` lets tests alter the loss (e.g. inject NaN)."""
    t = run.recipe.train
    last = t.steps if max_steps is None else min(t.steps, run.state.step + max_steps)
    metrics = MetricsLog(run.out_dir, run.dist.is_main, resume_step=run.state.step)
    stream = batch_stream(run.dataset, run.state, t.batch_size, t.seed, run.dist, run.collate, t.num_workers)
    params = [p for g in run.optimizer.param_groups for p in g["params"]]
    amp = autocast(t.precision, run.dist.device)
    run.module.train()
    try:
        while run.state.step < last:
            start = time.perf_counter()
            sums: dict[str, float] = {}
            total_val = 0.0
            finite = True
            for micro in range(t.grad_accum):
                batch = run.to_device(next(stream))
                sync = micro == t.grad_accum - 1 or not hasattr(run.module, "no_sync")
                ctx = contextlib.nullcontext() if sync else run.module.no_sync()
                with ctx:
                    with amp:
                        loss, parts = run.module(batch)
                    if loss_hook is not None:
                        loss = loss_hook(run.state.step + 1, loss)
                    finite = finite and bool(torch.isfinite(loss.detach()).all())
                    if finite:
                        (loss / t.grad_accum).backward()
                total_val += float(loss.detach()) / t.grad_accum
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0.0) + float(v) / t.grad_accum
            if not _all_true(finite, run.dist):
                where = latest_pointer_text(run.out_dir)
                raise NonFiniteLossError(
                    f"loss became {total_val} at step {run.state.step + 1}; training stopped before that update. "
                    + (f"The last good checkpoint is {where} (continue with --resume {run.out_dir})"
                       if where else "No checkpoint had been saved yet"))
            grad_norm = torch.nn.utils.clip_grad_norm_(params, t_clip(run)) if t_clip(run) > 0 else None
            run.optimizer.step()
            run.optimizer.zero_grad(set_to_none=True)
            run.scheduler.step()
            run.state.step += 1
            if run.state.step % t.log_every == 0 or run.state.step == last:
                rec = {"step": run.state.step, "loss": total_val, **sums,
                       "lr": run.optimizer.param_groups[0]["lr"],
                       "grad_norm": float(grad_norm) if grad_norm is not None else None,
                       "step_time_s": time.perf_counter() - start, "epoch": run.state.epoch}
                metrics.write(rec)
                if log is not None and run.dist.is_main:
                    log(rec)
            if run.state.step % t.save_every == 0 or run.state.step == last:
                checkpoint(run)
    finally:
        metrics.close()
    return run.state


def t_clip(run: Run) -> float:
    return float(run.recipe.optim.grad_clip)


def latest_pointer_text(out_dir: Path) -> str:
    pointer = out_dir / LATEST_FILE
    return str(out_dir / pointer.read_text(encoding="utf-8").strip()) if pointer.is_file() else ""


def state_hash(module: nn.Module) -> str:
    """SHA-256 over every parameter and buffer (name, bytes): equal hashes = identical weights."""
    import hashlib

    h = hashlib.sha256()
    inner = module.module if hasattr(module, "module") else module
    for k, v in sorted(inner.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                 if v.numel() else b"")
    return h.hexdigest()

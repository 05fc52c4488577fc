"""The Vid-LLM network (paper Sec. 3, Fig. 2): shared DINOv2 encoder -> Cross-Task Adapter -> reconstruction branch
(Global-Frame aggregator, camera / DPT heads, Metric Depth Model, real-scale alignment) and 3D patch tokens (Eq. 3-4)
for the language branch.

One-way gradient (Sec. 3.4): the 3D patch tokens are built from DETACHED geometry, so a loss on the language stream
reaches the encoder, the adapter and the language-side modules, never the aggregator, the heads or the metric-depth
model. The language branch (Sec. 3.3: voxel-pooled 3D tokens -> projector -> causal LLM, grounding head) is
`VidLLM.language`, a `vidllm_core.language.fusion.SceneLanguageModel`, present when the config names an LLM and a
tokenizer is given.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from vidllm_core.config import LanguageConfig, VidLLMConfig
from vidllm_core.errors import CheckpointError, ConfigError
from vidllm_core.geometry.pose_encoding import pose_encoding_to_extri_intri
from vidllm_core.geometry.scale_alignment import apply_scale, scene_scale
from vidllm_core.geometry.unproject import unproject_depth_to_world
from vidllm_core.heads.camera import CameraHead
from vidllm_core.heads.dpt import DPTHead
from vidllm_core.models.adapter import CrossTaskAdapter
from vidllm_core.models.aggregator import IMAGENET_MEAN, IMAGENET_STD, Aggregator
from vidllm_core.models.encoder import DinoEncoder
from vidllm_core.models.metric_depth import MetricDepthModel
from vidllm_core.models.patch3d import Patch3DEmbedding, patch_centroids
from vidllm_core.models.reconstruction import ALL_OUTPUTS, DEPTH_AND_CAMERAS, VGGTReconstruction

if TYPE_CHECKING:
    from vidllm_core.language.pooling import PooledScene

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_DIR = "tokenizer"


@dataclass
class SceneGeometry:
    """Per-sequence metric reconstruction (all tensors detached).

    depth [S,H,W] metres, depth_conf [S,H,W], extrinsic [S,3,4] camera-from-world (OpenCV axes, metres, world =
    first camera), intrinsic [S,3,3] at (H,W), world_points [S,H,W,3] metres, scale (relative -> metres),
    metric (False when the model has no metric-depth branch: the output is in VGGT's relative units).
    """

    depth: Tensor
    depth_conf: Tensor
    extrinsic: Tensor
    intrinsic: Tensor
    world_points: Tensor
    scale: float
    metric: bool


@dataclass
class SceneEncoding:
    """Everything the language tasks need from one video: the output of the expensive vision pass.

    tokens [M, C] voxel-pooled 3D patch tokens (Sec. 3.3, M <= language.token_budget), xyz [M, 3] their mean world
    positions (metres), mask [M] bool (all True for one scene; kept for batching), geometry: the metric
    reconstruction the tokens were built on.
    """

    tokens: Tensor
    xyz: Tensor
    mask: Tensor
    geometry: SceneGeometry

    _GEOMETRY_TENSORS = ("depth", "depth_conf", "extrinsic", "intrinsic", "world_points")

    def to_tensors(self) -> tuple[dict[str, Tensor], dict[str, str]]:
        """(tensors, string metadata) for a safetensors file (the scene cache)."""
        tensors = {"tokens": self.tokens, "xyz": self.xyz, "mask": self.mask}
        tensors |= {f"geometry.{k}": getattr(self.geometry, k) for k in self._GEOMETRY_TENSORS}
        meta = {"scale": repr(float(self.geometry.scale)), "metric": str(bool(self.geometry.metric))}
        return tensors, meta

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, Tensor], meta: Mapping[str, str]) -> "SceneEncoding":
        geometry = SceneGeometry(**{k: tensors[f"geometry.{k}"] for k in cls._GEOMETRY_TENSORS},
                                 scale=float(meta["scale"]), metric=meta["metric"] == "True")
        return cls(tensors["tokens"], tensors["xyz"], tensors["mask"].to(torch.bool), geometry)

    def to(self, device: str | torch.device) -> "SceneEncoding":
        g = self.geometry
        geometry = SceneGeometry(*(getattr(g, k).to(device) for k in self._GEOMETRY_TENSORS), g.scale, g.metric)
        return SceneEncoding(self.tokens.to(device), self.xyz.to(device), self.mask.to(device), geometry)


class VidLLM(nn.Module):
    """Vid-LLM: the vision side, and `language` (a `SceneLanguageModel`) when the config has an LLM and a tokenizer.

    Args:
        config: the composed model configuration (`vidllm_core.config.VidLLMConfig`).
        tokenizer: the LLM's tokenizer; with `config.language.llm` set, a randomly initialised LLM of that
            Hugging Face config is attached as `self.language` (weights come from `from_pretrained`). Without a
            tokenizer the model is vision-only and has no `language` attribute.
    """

    def __init__(self, config: VidLLMConfig, tokenizer: object | None = None) -> None:
        super().__init__()
        self.config = config
        self.checkpoint_dir: Path | None = None  # set by from_pretrained (the scene cache fingerprints its weights)
        enc, agg, cam = config.encoder, config.aggregator, config.camera_head
        dim = enc.embed_dim
        self.encoder = DinoEncoder(
            img_size=enc.img_size, patch_size=enc.patch_size, embed_dim=dim, depth=enc.depth,
            num_heads=enc.num_heads, mlp_ratio=enc.mlp_ratio, num_register_tokens=enc.num_register_tokens,
            init_values=enc.init_values, layernorm_eps=enc.layernorm_eps,
            interpolate_antialias=enc.interpolate_antialias, interpolate_offset=enc.interpolate_offset,
        )
        self.adapter = CrossTaskAdapter(
            embed_dim=dim, num_heads=config.adapter.num_heads, variant=config.adapter.variant,
            num_bridge_tokens=config.adapter.num_bridge_tokens, mlp_ratio=config.adapter.mlp_ratio,
        )
        aggregator = Aggregator(
            embed_dim=dim, depth=agg.depth, num_heads=agg.num_heads, mlp_ratio=agg.mlp_ratio,
            num_register_tokens=agg.num_register_tokens, patch_size=enc.patch_size, qk_norm=agg.qk_norm,
            rope_freq=agg.rope_freq, init_values=agg.init_values, patch_embed=None,
        )
        camera_head = CameraHead(
            dim_in=2 * dim, trunk_depth=cam.trunk_depth, num_heads=cam.num_heads, mlp_ratio=cam.mlp_ratio,
            init_values=cam.init_values, num_iterations=cam.num_iterations,
        )
        depth_head = _dpt_head(config.depth_head, 2 * dim, enc.patch_size, output_dim=2, activation="exp")
        point_head = (
            _dpt_head(config.point_head, 2 * dim, enc.patch_size, output_dim=4, activation="inv_log")
            if config.point_head is not None else None
        )
        _init_pose_output(camera_head, cam.num_iterations)
        self.reconstruction = VGGTReconstruction(aggregator, camera_head, point_head, depth_head)
        md = config.metric_depth
        self.metric_depth = (
            MetricDepthModel(
                embed_dim=dim, features=md.features, out_channels=md.out_channels, num_bins=md.num_bins,
                min_depth=md.min_depth, max_depth=md.max_depth, patch_size=enc.patch_size,
            )
            if md is not None else None
        )
        self.patch3d = Patch3DEmbedding(dim, config.patch3d.hidden_dim)
        self.register_buffer("image_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if tokenizer is not None and config.language is not None and config.language.llm:
            self.attach_language(tokenizer)

    # ---- language branch -------------------------------------------------------------------------------------
    @property
    def has_language(self) -> bool:
        """True when the language branch (`self.language`) is attached."""
        return getattr(self, "language", None) is not None

    def attach_language(self, tokenizer: object, llm: nn.Module | None = None) -> None:
        """Attach `self.language`: projector + causal LLM (random from `config.language.llm`, or `llm`) + head.

        Args:
            tokenizer: a Hugging Face tokenizer (reserved tokens are added; the LLM's embeddings resized).
            llm: an already loaded `AutoModelForCausalLM` (e.g. from `vidllm init --llm DIR`); None builds the
                LLM of `config.language.llm` with random weights.
        """
        from vidllm_core.language.fusion import SceneLanguageModel, language_kwargs

        cfg = self.config.language
        if cfg is None:
            raise ConfigError("the model config has no language section")
        dim = self.config.encoder.embed_dim
        if llm is not None:
            self.language = SceneLanguageModel(llm, tokenizer, dim, **language_kwargs(cfg))  # type: ignore[arg-type]
        else:
            self.language = SceneLanguageModel.from_config(_with_vocab(cfg, tokenizer), tokenizer, dim)

    @torch.no_grad()
    def encode_scene(self, images: Tensor) -> SceneEncoding:
        """The vision pass of the language tasks: reconstruction + 3D patch tokens (Eq. 3-4) + voxel pooling.

        Args:
            images: [S, 3, H, W] RGB in [0, 1], preprocessed like `config.input`.

        Returns:
            `SceneEncoding`: tokens [M, C], xyz [M, 3] (metres, world = first camera), mask [M], geometry.
        """
        out = self(images.unsqueeze(0), outputs=DEPTH_AND_CAMERAS)
        geometry = self.geometry(out, 0)
        pooled = self.scene_tokens(out["tokens_lang"][0], geometry)
        keep = pooled.mask[0]
        return SceneEncoding(pooled.tokens[0][keep], pooled.xyz[0][keep], keep[keep], geometry)

    # ---- forward ---------------------------------------------------------------------------------------------
    def forward(self, images: Tensor, outputs: Collection[str] = ALL_OUTPUTS) -> dict[str, Tensor | list[Tensor]]:
        """Run encoder, adapter and the reconstruction branch.

        Args:
            images: [B, S, 3, H, W] (or [S, 3, H, W]) RGB in [0, 1]; H, W multiples of the patch size.
            outputs: reconstruction heads to run (`models.reconstruction.ALL_OUTPUTS`; `geometry` needs only
                `DEPTH_AND_CAMERAS`: the point head is skipped and only the aggregator layers the heads read kept).

        Returns:
            pose_enc [B,S,9], pose_enc_list (list of [B,S,9]), depth [B,S,H,W,1], depth_conf [B,S,H,W],
            (world_points [B,S,H,W,3], world_points_conf [B,S,H,W] with a point head), metric_depth [B,S,H,W]
            (with a metric-depth model), tokens_geom / tokens_lang [B,S,N,C] (T'_geom, T'_lang), tokens_base
            [B,S,N,C] (T_base) and grid_hw (h, w) as a tensor.
        """
        if images.dim() == 4:
            images = images.unsqueeze(0)
        b, s, _, h, w = images.shape
        p = self.config.encoder.patch_size
        if h % p or w % p:
            raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {p}")
        grid = (h // p, w // p)
        x = (images.reshape(b * s, 3, h, w) - self.image_mean) / self.image_std
        enc = self.encoder(x, intermediate_layers=list(self.config.encoder.intermediate_layers))
        base = enc["x_norm_patchtokens"]
        geom, lang = self.adapter(base)
        rec = self.reconstruction
        keep = rec.layers_read(outputs)
        tokens, start = rec.aggregator.forward_tokens(geom.reshape(b, s, *geom.shape[1:]), grid, keep)
        out = rec.forward_heads(tokens, start, (h, w), outputs)
        if self.metric_depth is not None:
            out["metric_depth"] = self.metric_depth(enc["intermediates"], grid, (h, w)).reshape(b, s, h, w)
        out["tokens_base"] = base.reshape(b, s, *base.shape[1:])
        out["tokens_geom"] = geom.reshape(b, s, *geom.shape[1:])
        out["tokens_lang"] = lang.reshape(b, s, *lang.shape[1:])
        out["grid_hw"] = torch.tensor(grid)
        return out

    # ---- geometry --------------------------------------------------------------------------------------------
    @torch.no_grad()
    def geometry(self, out: Mapping[str, Tensor], index: int = 0) -> SceneGeometry:
        """Metric reconstruction of batch item `index` from `forward` outputs (Sec. 3.2 real-scale alignment).

        With alignment: scale = median over <= 16 seeded frames of the confidence-weighted LS scale between the DPT
        depth and the metric depth; it multiplies depth, camera translations and points. Without alignment
        (`alignment.enabled=False`, the "MD w/o alignment" ablation) the metric depth replaces the DPT depth and the
        translations are scaled by the ratio of the two depths' medians. Without a metric-depth model, scale is 1.
        """
        depth = out["depth"][index, ..., 0].float()
        conf = out["depth_conf"][index].float()
        h, w = depth.shape[-2:]
        extrinsic, intrinsic = pose_encoding_to_extri_intri(out["pose_enc"][index].float(), (h, w))
        metric = "metric_depth" in out
        scale = 1.0
        if metric:
            metric_depth = out["metric_depth"][index].float()
            align = self.config.alignment
            if align.enabled:
                scale = scene_scale(depth, metric_depth, weights=conf, num_frames=align.num_frames, seed=align.seed)
            else:
                scale = float(metric_depth.median() / depth.median().clamp_min(1e-8))
        depth, extrinsic, _ = apply_scale(depth, extrinsic, None, scale)
        if metric and not self.config.alignment.enabled:
            depth = out["metric_depth"][index].float()
        points = unproject_depth_to_world(depth, extrinsic, intrinsic)
        return SceneGeometry(depth, conf, extrinsic, intrinsic, points, scale, metric)

    def patch_tokens_3d(self, tokens_lang: Tensor, geometry: SceneGeometry) -> tuple[Tensor, Tensor]:
        """3D patch tokens of one sequence (Eq. 3-4).

        Args:
            tokens_lang: T'_lang [S, N, C] of the sequence.
            geometry: its metric reconstruction (detached, so the language loss never reaches reconstruction).

        Returns:
            (T_3D [S*N, C], patch world coordinates [S*N, 3] in metres).
        """
        s, n, c = tokens_lang.shape
        xyz = patch_centroids(geometry.world_points.detach(), self.config.encoder.patch_size).reshape(s, n, 3)
        return self.patch3d(tokens_lang, xyz).reshape(s * n, c), xyz.reshape(s * n, 3)

    def scene_tokens(self, tokens_lang: Tensor, geometry: SceneGeometry) -> "PooledScene":
        """The LLM's scene tokens of one sequence: 3D patch tokens (Eq. 3-4) voxel-pooled to the token budget
        (`language.pooling.pool_scene_tokens`). The one path of Stage-2 training and of `encode_scene`.

        Returns:
            `PooledScene` of batch 1: tokens [1, M, C], xyz [1, M, 3] (metres, the sequence's world), mask [1, M].
        """
        from vidllm_core.language.pooling import pool_scene_tokens

        tokens, xyz = self.patch_tokens_3d(tokens_lang, geometry)
        return pool_scene_tokens(tokens[None], xyz[None], self.config.language)

    @torch.no_grad()
    def reconstruct(self, images: Tensor) -> SceneGeometry:
        """Metric reconstruction of one frame sequence `images` [S, 3, H, W] in [0, 1]."""
        return self.geometry(self(images.unsqueeze(0), outputs=DEPTH_AND_CAMERAS))

    # ---- checkpoints -----------------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> None:
        """Write `config.json` + `model.safetensors` (+ `tokenizer/` with a language branch), each atomically.

        Everything is in one safetensors file (the LLM under `language.llm.`); tied weights (an LLM's input
        embedding and output head) are stored once and re-tied on load.
        """
        from safetensors.torch import save_file

        from vidllm_core.io import atomic_path, write_text_atomic

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = weights_for_saving(self.state_dict())
        with atomic_path(directory / WEIGHTS_FILE) as tmp:
            save_file(state, str(tmp), metadata={"format": "pt", "vidllm_preset": self.config.name})
        if self.has_language:
            _save_tokenizer(self.language.tokenizer, directory / TOKENIZER_DIR)
        write_text_atomic(directory / CONFIG_FILE, self.config.to_json() + "\n")

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu",
                        language: bool = True) -> "VidLLM":
        """Load a model directory written by `save_pretrained` / `vidllm init`; returns the model in eval mode.

        `language=False` loads the vision side only (reconstruction, depth, poses): the LLM is neither built nor read,
        which skips importing transformers.
        """
        directory = Path(directory)
        if not directory.is_dir():
            raise CheckpointError(f"model directory not found: {directory}")
        if not (directory / WEIGHTS_FILE).is_file():
            raise CheckpointError(f"model directory {directory} has no {WEIGHTS_FILE}")
        config = VidLLMConfig.from_file(directory / CONFIG_FILE)
        state = _read_safetensors(directory / WEIGHTS_FILE)
        tokenizer = None
        if not language:
            state = {k: v for k, v in state.items() if not k.startswith("language.")}
        elif config.language is not None and config.language.llm and any(k.startswith("language.") for k in state):
            from vidllm_core.language.tokenizer import has_tokenizer_files, load_tokenizer

            if not has_tokenizer_files(directory / TOKENIZER_DIR):
                raise CheckpointError(f"model directory {directory} holds an LLM but no tokenizer "
                                      f"({TOKENIZER_DIR}/ is missing); rewrite it with `vidllm init` or copy the "
                                      "tokenizer it was trained with")
            tokenizer, _ = load_tokenizer(directory / TOKENIZER_DIR)
        try:
            model = cls(config, tokenizer)
        except (ValueError, RuntimeError) as exc:
            raise CheckpointError(f"model directory {directory}: cannot build the model of its config.json "
                                  f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        load_weights(model, state, source=str(directory))
        model.checkpoint_dir = directory
        return model.to(device).eval()


def _with_vocab(cfg: LanguageConfig, tokenizer: object) -> LanguageConfig:
    """`cfg` with `llm.vocab_size` = len(tokenizer) when the preset leaves it out (tiny / demo)."""
    import dataclasses

    if "vocab_size" in cfg.llm:
        return cfg
    return dataclasses.replace(cfg, llm={**cfg.llm, "vocab_size": len(tokenizer)})  # type: ignore[arg-type]


def weights_for_saving(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Detached, contiguous CPU tensors with tied aliases dropped (safetensors refuses shared storage;
    `load_weights` fills the aliases back in)."""
    aliases = _tied_aliases(state)
    return {k: v.detach().contiguous().cpu() for k, v in state.items() if k not in aliases}


def _tied_aliases(state: Mapping[str, Tensor]) -> dict[str, str]:
    """{alias: first name} for state-dict entries that share storage with an earlier entry (tied weights)."""
    seen: dict[tuple[int, int, tuple[int, ...], tuple[int, ...]], str] = {}
    aliases: dict[str, str] = {}
    for name, t in state.items():
        if t.device.type == "meta" or t.numel() == 0:
            continue
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()))
        if key in seen:
            aliases[name] = seen[key]
        else:
            seen[key] = name
    return aliases


def _save_tokenizer(tokenizer: object, target: Path) -> None:
    """Write the tokenizer into a temporary folder beside `target`, then swap it in."""
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        tokenizer.save_pretrained(str(tmp))  # type: ignore[attr-defined]
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _init_pose_output(camera_head: CameraHead, num_iterations: int, fov: float = 1.0) -> None:
    """Start an untrained camera head at a valid camera: identity rotation (qw = 1) and a ~57 degree field of view.

    VGGT's head sums `num_iterations` deltas and applies ReLU to the FoV, so a random init can give FoV 0 (an
    infinite focal length). VGGT checkpoints overwrite this; it only matters for models trained from scratch.
    """
    last = camera_head.pose_branch.fc2
    with torch.no_grad():
        last.weight[3:9].mul_(0.1)
        last.bias[3:9] = torch.tensor([0.0, 0.0, 0.0, 1.0, fov, fov]) / num_iterations


def _dpt_head(cfg, dim_in: int, patch_size: int, output_dim: int, activation: str) -> DPTHead:
    return DPTHead(
        dim_in=dim_in, patch_size=patch_size, output_dim=output_dim, activation=activation, conf_activation="expp1",
        features=cfg.features, out_channels=cfg.out_channels, intermediate_layer_idx=cfg.intermediate_layer_idx,
        pos_embed=cfg.pos_embed,
    )


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read weights {path}: {exc}") from None


def load_weights(model: nn.Module, state_dict: Mapping[str, Tensor], source: str, strict: bool = True) -> list[str]:
    """Load `state_dict` into `model`, turning every mismatch into one CheckpointError line.

    Returns the model keys that were not in `state_dict` (empty when `strict`).
    """
    own = model.state_dict()
    tied = {a: name for a, name in _tied_aliases(own).items() if a not in state_dict and name in state_dict}
    if tied:  # tied weights (LLM embedding / head) are stored once: fill the alias from its source
        state_dict = {**state_dict, **{alias: state_dict[name] for alias, name in tied.items()}}
    shape_errors = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state_dict.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    unexpected = sorted(set(state_dict) - set(own))
    missing = sorted(set(own) - set(state_dict))
    problems = []
    if shape_errors:
        problems.append(f"{len(shape_errors)} shape mismatch(es), e.g. {shape_errors[0]}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[0]}")
    if missing and strict:
        problems.append(f"{len(missing)} missing key(s), e.g. {missing[0]}")
    if problems:
        raise CheckpointError(f"weights from {source} do not match the model config: " + "; ".join(problems))
    model.load_state_dict(state_dict, strict=False)
    return missing

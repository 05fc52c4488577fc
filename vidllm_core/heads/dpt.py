"""DPT dense head (Ranftl et al. 2021) as used by VGGT for depth / point maps with confidence (VGGT Sec. 3.3).

Reproduces the official ResidualConvUnit quirk: one shared in-place ReLU makes the skip add ``relu(x)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vidllm_core.heads.activations import CONF_ACTIVATIONS, DENSE_ACTIVATIONS, activate_head


def uv_grid(width: int, height: int, aspect_ratio: float, device: torch.device | None = None) -> torch.Tensor:
    """Normalised ``(x, y)`` coordinates of a ``height x width`` grid ``[H, W, 2]`` on the unit-diagonal image.

    x spans ``+-(ar / sqrt(ar^2 + 1)) * (W - 1) / W`` and y ``+-(1 / sqrt(ar^2 + 1)) * (H - 1) / H``.
    """
    diag = (aspect_ratio**2 + 1.0) ** 0.5
    span_x, span_y = aspect_ratio / diag, 1.0 / diag
    xs = torch.linspace(-span_x * (width - 1) / width, span_x * (width - 1) / width, width, device=device)
    ys = torch.linspace(-span_y * (height - 1) / height, span_y * (height - 1) / height, height, device=device)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((xx, yy), dim=-1)


def _sincos(pos: torch.Tensor, dim: int, omega_0: float) -> torch.Tensor:
    """``pos [M]`` -> ``[M, dim]`` = [sin(pos * w), cos(pos * w)], ``w_k = omega_0 ** -(k / (dim/2))`` (float64)."""
    omega = torch.arange(dim // 2, dtype=torch.float64, device=pos.device) / (dim / 2.0)
    omega = 1.0 / omega_0**omega
    angles = pos.reshape(-1).to(torch.float64)[:, None] * omega[None]
    return torch.cat((angles.sin(), angles.cos()), dim=1).float()


def grid_sincos_embed(grid: torch.Tensor, dim: int, omega_0: float = 100.0) -> torch.Tensor:
    """``grid [H, W, 2]`` -> ``[H, W, dim]``: first half embeds x, second half embeds y."""
    h, w, _ = grid.shape
    flat = grid.reshape(-1, 2)
    emb = torch.cat((_sincos(flat[:, 0], dim // 2, omega_0), _sincos(flat[:, 1], dim // 2, omega_0)), dim=-1)
    return emb.reshape(h, w, dim)


def uv_pos_embed(c: int, h: int, w: int, image_w: int, image_h: int, ratio: float = 0.1,
                 device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``ratio`` * the sin-cos embedding of the normalised uv grid of an ``h x w`` map, in its separable form.

    The first ``c/2`` channels embed x (constant down a column), the last ``c/2`` embed y (constant along a row), so
    the ``[c, h, w]`` map of :func:`grid_sincos_embed` is ``cat(ex.expand, ey.expand)`` with the same float32 values.

    Returns:
        ``(ex [1, c/2, 1, w], ey [1, c/2, h, 1])`` float32.
    """
    grid = uv_grid(w, h, image_w / image_h, device=device)
    ex = _sincos(grid[0, :, 0], c // 2, 100.0) * ratio  # [w, c/2]
    ey = _sincos(grid[:, 0, 1], c // 2, 100.0) * ratio  # [h, c/2]
    return ex.t()[None, :, None, :], ey.t()[None, :, :, None]


def add_uv_pos_embed(
    x: torch.Tensor, image_w: int, image_h: int, ratio: float = 0.1, cache: dict | None = None
) -> torch.Tensor:
    """Add ``ratio`` * the sin-cos embedding of the normalised uv grid to ``x [N, C, h, w]``.

    The embedding is added in its separable form (:func:`uv_pos_embed`: never a full ``[C, h, w]`` map; the sums are
    the official ones bit for bit); ``cache`` (a dict the caller keeps for one forward) reuses it across frame chunks
    and heads. Without autograd the add is in place (``x`` is a fresh activation of the head at every call site).
    """
    _, c, h, w = x.shape
    key = (c, h, w, image_w, image_h, ratio, x.device, x.dtype)
    emb = None if cache is None else cache.get(key)
    if emb is None:
        emb = tuple(e.to(x.dtype) for e in uv_pos_embed(c, h, w, image_w, image_h, ratio, x.device))
        if cache is not None:
            cache[key] = emb
    ex, ey = emb
    half = c // 2
    if torch.is_grad_enabled():
        return torch.cat((x[:, :half] + ex, x[:, half:] + ey), dim=1)
    x[:, :half].add_(ex)
    x[:, half:].add_(ey)
    return x


def conv1x1(conv: nn.Conv2d, x: torch.Tensor, grid_hw: tuple[int, int] | None = None) -> torch.Tensor:
    """``conv`` (a 1x1 Conv2d) on ``x [N, C, H, W]``, or on ``x [N, C, H*W]`` with ``grid_hw``.

    A transposed token tensor (``tokens.transpose(1, 2)``) is viewed as a channels-last image without a copy, and
    oneDNN keeps that layout through the head (medium config, 8 frames: depth head peak RSS 322 MB vs 472-484 MB for
    the official code and ~575 MB for the per-image ``addmm`` this replaced, and less CPU time).
    """
    n, c = x.shape[:2]
    h, w = grid_hw if grid_hw is not None else x.shape[2:]
    return conv(x.reshape(n, c, h, w))


class ResidualConvUnit(nn.Module):
    """``conv2(relu(conv1(relu(x)))) + skip`` with skip = ``relu(x)`` (VGGT: the official unit's in-place ReLU also
    rectifies the skip) or ``x`` (textbook DPT, ``rectified_skip=False``)."""

    def __init__(self, features: int, rectified_skip: bool = True) -> None:
        super().__init__()
        self.rectified_skip = rectified_skip
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, padding=1, bias=True)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, padding=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, F, h, w] -> [N, F, h, w]``."""
        rx = F.relu(x)
        skip = rx if self.rectified_skip else x
        if torch.is_grad_enabled():
            return self.conv2(F.relu(self.conv1(rx))) + skip
        # Inference: rectify and add in place (one full-size activation fewer alive at a time).
        hidden = F.relu_(self.conv1(rx))
        out = self.conv2(hidden)
        del hidden
        return out.add_(skip)


class FeatureFusionBlock(nn.Module):
    """``out = x0 (+ RCU1(x1)); out = RCU2(out)``; 1x1 ``out_conv``; bilinear (align_corners) resize (the official
    order is resize then ``out_conv``: the same linear map, see :meth:`forward`)."""

    def __init__(self, features: int, has_residual: bool = True, rectified_skip: bool = True) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, kernel_size=1, bias=True)
        unit1 = ResidualConvUnit(features, rectified_skip) if has_residual else None
        self.resConfUnit1 = unit1  # noqa: N815 (official key)
        self.resConfUnit2 = ResidualConvUnit(features, rectified_skip)  # noqa: N815

    def forward(self, x0: torch.Tensor, x1: torch.Tensor | None = None, size: Sequence[int] | None = None) -> torch.Tensor:
        """Fuse ``x0`` (and the skip ``x1``), then resize to ``size`` (default x2)."""
        out = x0
        if self.resConfUnit1 is not None and x1 is not None:
            res = self.resConfUnit1(x1)
            out = out + res if torch.is_grad_enabled() else res.add_(out)
            del res, x0, x1
        # The 1x1 out_conv runs BEFORE the resize: both are linear, the resize mixes pixels of one channel with
        # weights summing to 1 and the conv mixes channels of one pixel, so they commute (bias included) and the
        # conv costs a quarter of the official order's. Float rounding differs at the 1e-7 level.
        out = conv1x1(self.out_conv, self.resConfUnit2(out))
        if size is None:
            return F.interpolate(out, scale_factor=2, mode="bilinear", align_corners=True)
        return F.interpolate(out, size=tuple(size), mode="bilinear", align_corners=True)


class DPTHead(nn.Module):
    """Dense prediction from 4 aggregator layers.

    Args:
        dim_in: token width (2 * aggregator embed_dim).
        patch_size: pixels per patch side.
        output_dim: predicted channels including the confidence (depth: 2, points: 4).
        activation: activation of the values (``exp`` for depth, ``inv_log`` for points, ...).
        conf_activation: activation of the confidence (``expp1``).
        features: fusion width.
        out_channels: widths of the 4 projected layers.
        intermediate_layer_idx: which aggregator outputs feed the 4 branches.
        pos_embed: add the 0.1-scaled uv sin-cos embedding after projection and after fusion.
        feature_only: return the fused ``features``-channel map instead of predictions (no ``output_conv2``).
        down_ratio: output stride relative to the input image.
        frames_chunk_size: default number of frames processed at once (None: all).
    """

    def __init__(
        self,
        dim_in: int,
        patch_size: int = 14,
        output_dim: int = 4,
        activation: str = "inv_log",
        conf_activation: str = "expp1",
        features: int = 256,
        out_channels: Sequence[int] = (256, 512, 1024, 1024),
        intermediate_layer_idx: Sequence[int] = (4, 11, 17, 23),
        pos_embed: bool = True,
        feature_only: bool = False,
        down_ratio: int = 1,
        frames_chunk_size: int | None = 8,
    ) -> None:
        super().__init__()
        if len(out_channels) != 4 or len(intermediate_layer_idx) != 4:
            raise ValueError("DPTHead needs exactly 4 out_channels and 4 intermediate_layer_idx")
        if activation not in DENSE_ACTIVATIONS or conf_activation not in CONF_ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r} / conf_activation {conf_activation!r}")
        self.patch_size = patch_size
        self.activation = activation
        self.conf_activation = conf_activation
        self.pos_embed = pos_embed
        self.feature_only = feature_only
        self.down_ratio = down_ratio
        self.frames_chunk_size = frames_chunk_size
        self.intermediate_layer_idx = tuple(intermediate_layer_idx)

        self.norm = nn.LayerNorm(dim_in, eps=1e-5)
        self.projects = nn.ModuleList(nn.Conv2d(dim_in, oc, kernel_size=1) for oc in out_channels)
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(out_channels[0], out_channels[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(out_channels[1], out_channels[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(out_channels[3], out_channels[3], kernel_size=3, stride=2, padding=1),
            ]
        )
        self.scratch = nn.Module()
        for i, oc in enumerate(out_channels, start=1):
            setattr(self.scratch, f"layer{i}_rn", nn.Conv2d(oc, features, kernel_size=3, padding=1, bias=False))
        self.scratch.refinenet1 = FeatureFusionBlock(features)
        self.scratch.refinenet2 = FeatureFusionBlock(features)
        self.scratch.refinenet3 = FeatureFusionBlock(features)
        self.scratch.refinenet4 = FeatureFusionBlock(features, has_residual=False)
        if feature_only:
            self.scratch.output_conv1 = nn.Conv2d(features, features, kernel_size=3, padding=1)
        else:
            self.scratch.output_conv1 = nn.Conv2d(features, features // 2, kernel_size=3, padding=1)
            self.scratch.output_conv2 = nn.Sequential(
                nn.Conv2d(features // 2, 32, kernel_size=3, padding=1),
                nn.ReLU(),
                nn.Conv2d(32, output_dim, kernel_size=1),
            )

    def forward(
        self,
        aggregated_tokens_list: list[torch.Tensor],
        image_hw: tuple[int, int],
        patch_start_idx: int,
        frames_chunk_size: int | None = -1,
        pos_cache: dict | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor] | torch.Tensor:
        """Predict dense maps.

        Args:
            aggregated_tokens_list: aggregator outputs ``[B, S, P, dim_in]`` (entries this head does not read may
                be None).
            image_hw: input image size ``(H, W)`` in pixels.
            patch_start_idx: index of the first patch token in P.
            frames_chunk_size: frames per chunk (-1: the constructor's default; None: all at once).
            pos_cache: a dict kept by the caller for one forward to share the uv position embeddings with other
                heads of the same shapes (default: shared by this call's chunks only).

        Returns:
            ``(values [B, S, H', W', output_dim-1], conf [B, S, H', W'])`` with H' = H / down_ratio, or, in
            ``feature_only`` mode, the fused feature map ``[B, S, features, H', W']``.
        """
        chunk = self.frames_chunk_size if frames_chunk_size == -1 else frames_chunk_size
        s = aggregated_tokens_list[self.intermediate_layer_idx[0]].shape[1]
        cache = {} if pos_cache is None else pos_cache
        if chunk is None or chunk >= s:
            return self._forward_frames(aggregated_tokens_list, image_hw, patch_start_idx, 0, s, cache)
        parts = [
            self._forward_frames(aggregated_tokens_list, image_hw, patch_start_idx, i, min(i + chunk, s), cache)
            for i in range(0, s, chunk)
        ]
        if self.feature_only:
            return torch.cat(parts, dim=1)  # type: ignore[arg-type]
        return torch.cat([p[0] for p in parts], dim=1), torch.cat([p[1] for p in parts], dim=1)

    def _forward_frames(
        self, tokens_list: list[torch.Tensor], image_hw: tuple[int, int], start: int, f0: int, f1: int, cache: dict
    ) -> tuple[torch.Tensor, torch.Tensor] | torch.Tensor:
        h_img, w_img = image_hw
        gh, gw = h_img // self.patch_size, w_img // self.patch_size
        feats = []
        for i, layer in enumerate(self.intermediate_layer_idx):
            x = tokens_list[layer][:, f0:f1, start:]
            b, s, n, c = x.shape
            x = self.norm(x.reshape(b * s, n, c))
            x = conv1x1(self.projects[i], x.transpose(1, 2), (gh, gw))
            if self.pos_embed:
                x = add_uv_pos_embed(x, w_img, h_img, cache=cache)
            feats.append(self.resize_layers[i](x))
            del x
        out = self._fuse(feats)
        out = F.interpolate(
            out,
            size=(int(gh * self.patch_size / self.down_ratio), int(gw * self.patch_size / self.down_ratio)),
            mode="bilinear",
            align_corners=True,
        )
        if self.pos_embed:
            out = add_uv_pos_embed(out, w_img, h_img, cache=cache)
        b, s = tokens_list[self.intermediate_layer_idx[0]].shape[0], f1 - f0
        if self.feature_only:
            return out.reshape(b, s, *out.shape[1:])
        head = self.scratch.output_conv2
        pred = conv1x1(head[2], head[1](head[0](out)))
        values, conf = activate_head(pred, self.activation, self.conf_activation)
        return values.reshape(b, s, *values.shape[1:]), conf.reshape(b, s, *conf.shape[1:])

    def _fuse(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Coarse to fine; each projected map is consumed (and ``feats`` emptied) as soon as it is fused."""
        sc = self.scratch
        sizes = [f.shape[2:] for f in feats]
        out = sc.refinenet4(sc.layer4_rn(feats.pop()), size=sizes[2])
        out = sc.refinenet3(out, sc.layer3_rn(feats.pop()), size=sizes[1])
        out = sc.refinenet2(out, sc.layer2_rn(feats.pop()), size=sizes[0])
        out = sc.refinenet1(out, sc.layer1_rn(feats.pop()))
        return sc.output_conv1(out)

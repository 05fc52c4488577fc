"""Metric Depth Model: paper Sec. 3.2 "Metric Depth Model" (DPT-style decoder + ordinal depth bins).

A compact DPT-style decoder (reassemble four intermediate encoder layers at four scales, fuse them coarse to
fine with residual conv units, upsample to full resolution) produces per-pixel features ``F``. A bin head turns
them into metric depth ``d_i = sum_k p_i(k) c_i(k)``:

* N fixed bin centres ``c_k``, log-uniform between ``min_depth`` and ``max_depth``.
* Ordinal-aware normalisation (our reading; the paper does not define it): N-1 ordinal logits ``l_k`` =
  "the depth exceeds boundary k"; exceedance ``P(>k) = prod_{j<=k} sigmoid(l_j)`` is monotone by construction;
  ``p(k) = P(>k-1) - P(>k)`` with ``P(>0) = 1``, ``P(>N) = 0``, computed as ``P(>k-1) * sigmoid(-l_k)`` so it
  is never negative.
* Refined centres in log space: ``c_i(k) = c_k * exp(delta * tanh(r_k(F_i)))`` with ``delta`` half a bin's
  log-width, so centres stay positive and in bin order; ``r`` is zero-initialised.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidllm_core.errors import ConfigError
from vidllm_core.heads.dpt import FeatureFusionBlock, conv1x1


class MetricDepthOutput(NamedTuple):
    """Everything the bin head computes (``MetricDepthModel.predict_bins``).

    Attributes:
        depth: [B*S, H, W] metric depth in metres.
        probs: [B*S, N, H, W] per-pixel bin probabilities ``p_i(k)`` (sum to 1 over N).
        centers: [B*S, N, H, W] refined bin centres ``c_i(k)`` in metres.
        exceedance: [B*S, N-1, H, W] ``P(depth > boundary k)``, non-increasing in k.
    """

    depth: Tensor
    probs: Tensor
    centers: Tensor
    exceedance: Tensor


class MetricDepthModel(nn.Module):
    """DPT-style decoder over four encoder layers + ordinal bin head -> metric depth (Sec. 3.2).

    Args:
        embed_dim: width C of the encoder tokens.
        features: DPT fusion width.
        out_channels: reassemble widths of the four layers, shallow to deep.
        num_bins: N, the number of depth bins.
        min_depth: first bin centre in metres.
        max_depth: last bin centre in metres.
        patch_size: encoder patch size in pixels (only used to check ``image_size`` against ``patch_grid``).
        head_features: channels of the full-resolution features ``F_i`` fed to the bin head.
        norm_eps: epsilon of the per-layer LayerNorms.
    """

    def __init__(
        self,
        embed_dim: int,
        features: int = 256,
        out_channels: Sequence[int] = (256, 512, 1024, 1024),
        num_bins: int = 64,
        min_depth: float = 0.1,
        max_depth: float = 10.0,
        patch_size: int = 14,
        head_features: int = 32,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        out_channels = tuple(int(c) for c in out_channels)
        if len(out_channels) != 4:
            raise ConfigError(f"the metric depth decoder needs 4 out_channels, got {len(out_channels)}")
        if num_bins < 2:
            raise ConfigError(f"the metric depth model needs at least 2 bins, got {num_bins}")
        if not 0.0 < min_depth < max_depth:
            raise ConfigError(f"need 0 < min_depth < max_depth, got {min_depth} and {max_depth}")
        self.embed_dim = embed_dim
        self.num_bins = num_bins
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)
        self.patch_size = patch_size
        # Half the log-width of a bin: refined centres never cross their neighbours.
        self.max_log_refine = 0.5 * math.log(max_depth / min_depth) / (num_bins - 1)

        # Reassemble: per layer LayerNorm, 1x1 projection, resize to strides 4, 8, 16, 32 (patch 14: x4 .. /2).
        self.norms = nn.ModuleList([nn.LayerNorm(embed_dim, eps=norm_eps) for _ in range(4)])
        self.projects = nn.ModuleList([nn.Conv2d(embed_dim, c, 1) for c in out_channels])
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(out_channels[0], out_channels[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(out_channels[1], out_channels[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(out_channels[3], out_channels[3], kernel_size=3, stride=2, padding=1),
            ]
        )
        self.layers_rn = nn.ModuleList([nn.Conv2d(c, features, 3, padding=1, bias=False) for c in out_channels])
        self.fusions = nn.ModuleList(
            [FeatureFusionBlock(features, has_residual=i < 3, rectified_skip=False) for i in range(4)]
        )
        self.head_conv = nn.Conv2d(features, features // 2, 3, padding=1)
        self.head_out = nn.Conv2d(features // 2, head_features, 3, padding=1)

        # Bin head on F_i.
        self.ordinal_logits = nn.Conv2d(head_features, num_bins - 1, 1)
        self.center_refine = nn.Conv2d(head_features, num_bins, 1)
        nn.init.zeros_(self.center_refine.weight)
        nn.init.zeros_(self.center_refine.bias)
        # Start near a uniform distribution over bins: sigmoid(b_k) = (N-k)/(N-k+1) gives P(>k) = (N-k)/N.
        with torch.no_grad():
            self.ordinal_logits.weight.mul_(0.1)
            self.ordinal_logits.bias.copy_(torch.log(torch.arange(num_bins - 1, 0, -1, dtype=torch.float32)))
        centers = torch.exp(torch.linspace(math.log(min_depth), math.log(max_depth), num_bins, dtype=torch.float64))
        self.register_buffer("bin_centers", centers.float(), persistent=False)

    def decode(
        self, layer_tokens: Sequence[Tensor], patch_grid: tuple[int, int], image_size: tuple[int, int]
    ) -> Tensor:
        """DPT-style decoder: four token layers -> full-resolution features ``F``.

        Args:
            layer_tokens: four tensors [B*S, N, C] (patch tokens only, N = h*w), shallow to deep.
            patch_grid: (h, w), the patch grid.
            image_size: (H, W), the output resolution.

        Returns:
            [B*S, head_features, H, W].
        """
        if len(layer_tokens) != 4:
            raise ValueError(f"the metric depth decoder takes 4 layers, got {len(layer_tokens)}")
        h, w = patch_grid
        if tuple(image_size) != (h * self.patch_size, w * self.patch_size):
            raise ValueError(f"image size {tuple(image_size)} does not match patch grid {(h, w)} x {self.patch_size}")
        maps = []
        for i, tokens in enumerate(layer_tokens):
            if tokens.ndim != 3 or tokens.shape[1] != h * w or tokens.shape[2] != self.embed_dim:
                raise ValueError(f"layer {i}: expected [B*S, {h * w}, {self.embed_dim}], got {tuple(tokens.shape)}")
            x = conv1x1(self.projects[i], self.norms[i](tokens).transpose(1, 2), (h, w))
            x = self.resize_layers[i](x)
            maps.append(self.layers_rn[i](x))
        x = self.fusions[3](maps[3], size=maps[2].shape[-2:])
        x = self.fusions[2](x, maps[2], size=maps[1].shape[-2:])
        x = self.fusions[1](x, maps[1], size=maps[0].shape[-2:])
        x = self.fusions[0](x, maps[0], size=(2 * maps[0].shape[-2], 2 * maps[0].shape[-1]))
        x = self.head_conv(x)
        x = F.interpolate(x, size=tuple(image_size), mode="bilinear", align_corners=True)
        return F.relu(self.head_out(F.relu(x)))

    def bins_from_features(self, feats: Tensor) -> MetricDepthOutput:
        """Bin head: features [B*S, F, H, W] -> ``MetricDepthOutput`` (ordinal probabilities, refined centres)."""
        logits = self.ordinal_logits(feats)  # [B, N-1, H, W]
        # log P(>k) = sum_{j<=k} log sigmoid(l_j); exact log-space cumulative product.
        log_exceed = torch.cumsum(F.logsigmoid(logits), dim=1)
        log_prev = torch.cat([torch.zeros_like(log_exceed[:, :1]), log_exceed], dim=1)  # log P(>k-1), k=1..N
        log_stop = torch.cat([F.logsigmoid(-logits), torch.zeros_like(logits[:, :1])], dim=1)  # log(1 - sig(l_k))
        probs = torch.exp(log_prev + log_stop)  # p(k) = P(>k-1) * (1 - sigmoid(l_k)), P(>N) = 0
        refine = self.max_log_refine * torch.tanh(self.center_refine(feats))
        centers = self.bin_centers.to(feats.dtype).view(1, -1, 1, 1) * torch.exp(refine)
        depth = (probs * centers).sum(dim=1)
        return MetricDepthOutput(depth=depth, probs=probs, centers=centers, exceedance=torch.exp(log_exceed))

    def depth_from_features(self, feats: Tensor) -> Tensor:
        """Inference-only bin head: features [B*S, F, H, W] -> depth [B*S, H, W], equal to
        ``bins_from_features(feats).depth`` up to float rounding, about 3x cheaper.

        With exceedances ``E_k = prod_{j<=k} sigmoid(l_j)`` (E_0 = 1) and ``p(k) = E_{k-1} - E_k``, summation by
        parts gives ``sum_k p(k) c(k) = c(1) + sum_{k<N} E_k (c(k+1) - c(k))``: no log-space round trip, no
        probabilities, and every step in place. Used by :meth:`forward` without autograd.
        """
        logits = conv1x1(self.ordinal_logits, feats)  # [B, N-1, H, W]
        exceed = torch.cumprod(logits.sigmoid_(), dim=1)
        del logits
        centers = conv1x1(self.center_refine, feats).tanh_().mul_(self.max_log_refine).exp_()
        centers.mul_(self.bin_centers.to(feats.dtype).view(1, -1, 1, 1))
        steps = centers[:, 1:] - centers[:, :-1]
        return (steps.mul_(exceed)).sum(dim=1).add_(centers[:, 0])

    def predict_bins(
        self, layer_tokens: Sequence[Tensor], patch_grid: tuple[int, int], image_size: tuple[int, int]
    ) -> MetricDepthOutput:
        """Full prediction with the bin distribution (for analysis and losses); arguments as ``forward``."""
        return self.bins_from_features(self.decode(layer_tokens, patch_grid, image_size))

    def forward(
        self, layer_tokens: Sequence[Tensor], patch_grid: tuple[int, int], image_size: tuple[int, int]
    ) -> Tensor:
        """Metric depth.

        Args:
            layer_tokens: four tensors [B*S, N, C] from four intermediate encoder layers (patch tokens only).
            patch_grid: (h, w) with N = h*w.
            image_size: (H, W) = (h*patch_size, w*patch_size).

        Returns:
            [B*S, H, W] metric depth in metres, positive.
        """
        if torch.is_grad_enabled():
            return self.predict_bins(layer_tokens, patch_grid, image_size).depth
        return self.depth_from_features(self.decode(layer_tokens, patch_grid, image_size))

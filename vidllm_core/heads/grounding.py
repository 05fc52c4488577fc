"""3D grounding head: box regression and proposal scoring from the LLM's `<ground>` state (Vid-LLM Sec. 3.4, after LLaVA-3D / Video-3D-LLM).

A small DETR-style decoder: Q learned queries, shifted by a projection of the LLM's last hidden state at the
`<ground>` token, cross-attend to the pooled 3D patch tokens (their xyz encoded with Fourier features). Each query
returns an axis-aligned box `[cx, cy, cz, dx, dy, dz]` in metres, world frame (centre = attention-weighted mean of
the token positions + a regressed offset; sizes = softplus + a floor, always positive) and an objectness logit.
Multi3DRefer zero-target answers are "every logit below the threshold". With proposal boxes, each proposal is
described by the mean of the tokens inside it plus an encoding of its centre and size, and scored against the
query (cosine similarity with a learned temperature, as Video-3D-LLM's proposal selection).

Named dimensions: B batch, M pooled 3D tokens, C token channels, D LLM hidden size, Q queries, P proposals,
d head width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["GroundingHead", "GroundingOutput", "FourierPosition3D", "boxes_contain", "select_boxes"]

_EMPTY_LOGIT = -1.0e4  # objectness of every query in a scene without any 3D token


@dataclass
class GroundingOutput:
    """boxes [B, Q, 6] (metres, sizes > 0), logits [B, Q] objectness, attention [B, Q, M] (rows sum to 1)."""

    boxes: Tensor
    logits: Tensor
    attention: Tensor


class FourierPosition3D(nn.Module):
    """xyz [..., 3] metres -> [..., d]: MLP over (xyz, sin/cos of xyz at wavelengths 0.25 m ... 8 m)."""

    def __init__(self, dim: int, num_freqs: int = 6) -> None:
        super().__init__()
        freqs = 2.0 * math.pi / (8.0 * 0.5 ** torch.arange(num_freqs, dtype=torch.float32))
        self.register_buffer("freqs", freqs, persistent=False)
        in_dim = 3 + 6 * num_freqs
        self.mlp = nn.Sequential(nn.Linear(in_dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, xyz: Tensor) -> Tensor:
        ang = xyz[..., None] * self.freqs.to(xyz.dtype)  # [..., 3, F]
        feats = torch.cat([xyz, ang.sin().flatten(-2), ang.cos().flatten(-2)], dim=-1)
        return self.mlp(feats)


class _DecoderLayer(nn.Module):
    """Pre-norm: cross-attention to the scene, self-attention among queries, MLP."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.norm_cross = nn.LayerNorm(dim)
        self.cross = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.norm_self = nn.LayerNorm(dim)
        self.self_attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, q: Tensor, memory: Tensor, key_padding_mask: Tensor) -> Tensor:
        h = self.norm_cross(q)
        q = q + self.cross(h, memory, memory, key_padding_mask=key_padding_mask, need_weights=False)[0]
        h = self.norm_self(q)
        q = q + self.self_attn(h, h, h, need_weights=False)[0]
        return q + self.mlp(self.norm_mlp(q))


def boxes_contain(boxes: Tensor, xyz: Tensor) -> Tensor:
    """Point-in-box test: boxes [P, 6], xyz [M, 3] -> [P, M] bool (faces included)."""
    half = boxes[:, None, 3:] / 2
    return ((xyz[None, :, :] - boxes[:, None, :3]).abs() <= half).all(-1)


class GroundingHead(nn.Module):
    """Grounding decoder (module docstring).

    Args:
        query_dim: D, the LLM hidden size. token_dim: C, the pooled 3D token width. dim: d, the head width.
        num_queries: Q. num_layers / num_heads: decoder depth and heads (num_heads divides dim).
        min_size: smallest box edge in metres. init_size: edge of the boxes at initialisation (metres).
    """

    def __init__(self, query_dim: int, token_dim: int, dim: int = 128, num_queries: int = 16, num_layers: int = 2,
                 num_heads: int = 4, min_size: float = 0.02, init_size: float = 0.5) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"num_heads {num_heads} must divide dim {dim}")
        if not init_size > min_size >= 0:
            raise ValueError("need init_size > min_size >= 0")
        self.num_queries = num_queries
        self.min_size = float(min_size)
        self.queries = nn.Parameter(torch.randn(num_queries, dim) * 0.02)
        self.state_proj = nn.Linear(query_dim, dim)
        self.token_proj = nn.Linear(token_dim, dim)
        self.pos = FourierPosition3D(dim)
        self.memory_norm = nn.LayerNorm(dim)
        self.layers = nn.ModuleList(_DecoderLayer(dim, num_heads) for _ in range(num_layers))
        self.out_norm = nn.LayerNorm(dim)
        self.anchor_q = nn.Linear(dim, dim)
        self.anchor_k = nn.Linear(dim, dim)
        self.center_offset = nn.Linear(dim, 3)
        self.size = nn.Linear(dim, 3)
        self.objectness = nn.Linear(dim, 1)
        # proposal scoring
        self.proposal_query = nn.Linear(query_dim, dim)
        self.proposal_size = nn.Linear(3, dim)
        self.proposal_mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))
        self.proposal_logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self.proposal_bias = nn.Parameter(torch.tensor(-5.0))
        nn.init.zeros_(self.center_offset.weight)
        nn.init.zeros_(self.center_offset.bias)
        nn.init.zeros_(self.size.weight)
        nn.init.constant_(self.size.bias, math.log(math.expm1(init_size - min_size)))  # softplus^-1

    # ---- helpers ---------------------------------------------------------------------------------------------
    @staticmethod
    def _safe_inputs(tokens: Tensor, xyz: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Give every row at least one attendable slot; returns (tokens, xyz, mask, empty [B])."""
        if tokens.shape[1] == 0:
            tokens = tokens.new_zeros(tokens.shape[0], 1, tokens.shape[2])
            xyz = xyz.new_zeros(xyz.shape[0], 1, 3)
            mask = torch.zeros(mask.shape[0], 1, dtype=torch.bool, device=mask.device)
        empty = ~mask.any(-1)
        if bool(empty.any()):
            mask = mask.clone()
            mask[empty, 0] = True
        return tokens, xyz, mask, empty

    def _memory(self, tokens: Tensor, xyz: Tensor) -> Tensor:
        return self.memory_norm(self.token_proj(tokens) + self.pos(xyz.to(tokens.dtype)))

    # ---- forward ---------------------------------------------------------------------------------------------
    def forward(self, query_state: Tensor, tokens: Tensor, xyz: Tensor, mask: Tensor) -> GroundingOutput:
        """Regress Q boxes.

        Args:
            query_state: [B, D] LLM last hidden state at `<ground>`.
            tokens: [B, M, C] pooled 3D tokens. xyz: [B, M, 3] metres. mask: [B, M] bool, True = real token.

        Returns:
            `GroundingOutput`; items without any real token get logits -1e4 (no object).
        """
        if tokens.dim() != 3 or xyz.shape != (*tokens.shape[:2], 3) or mask.shape != tokens.shape[:2]:
            raise ValueError(f"tokens [B, M, C], xyz [B, M, 3], mask [B, M] expected, got {tuple(tokens.shape)}, "
                             f"{tuple(xyz.shape)}, {tuple(mask.shape)}")
        m_in = tokens.shape[1]
        tokens, xyz, mask, empty = self._safe_inputs(tokens, xyz, mask.to(torch.bool))
        dtype = self.queries.dtype
        tokens, query_state = tokens.to(dtype), query_state.to(dtype)
        memory = self._memory(tokens, xyz)
        q = self.queries[None] + self.state_proj(query_state)[:, None, :]
        for layer in self.layers:
            q = layer(q, memory, ~mask)
        q = self.out_norm(q)
        att = torch.einsum("bqd,bmd->bqm", self.anchor_q(q), self.anchor_k(memory)) / math.sqrt(q.shape[-1])
        att = att.masked_fill(~mask[:, None, :], float("-inf")).softmax(-1)
        anchor = torch.einsum("bqm,bmk->bqk", att, xyz.to(att.dtype))
        centre = anchor + self.center_offset(q)
        size = F.softplus(self.size(q)) + self.min_size
        logits = self.objectness(q).squeeze(-1)
        logits = torch.where(empty[:, None], torch.full_like(logits, _EMPTY_LOGIT), logits)
        return GroundingOutput(boxes=torch.cat([centre, size], -1), logits=logits, attention=att[..., :m_in])

    def score_proposals(self, query_state: Tensor, tokens: Tensor, xyz: Tensor, mask: Tensor,
                        proposals: Sequence[Tensor]) -> list[Tensor]:
        """Logits of each proposal box for each item: proposals = B tensors [P_b, 6] -> B tensors [P_b].

        A proposal's feature is the mean of the (position-encoded) tokens whose xyz lies inside it (zero if none)
        plus an encoding of its centre and size; logit = exp(scale) * cos(query, feature) + bias.
        """
        if len(proposals) != tokens.shape[0]:
            raise ValueError(f"{len(proposals)} proposal sets for a batch of {tokens.shape[0]}")
        tokens, xyz, mask, _ = self._safe_inputs(tokens, xyz, mask.to(torch.bool))
        dtype = self.queries.dtype
        memory = self._memory(tokens.to(dtype), xyz)
        qv = F.normalize(self.proposal_query(query_state.to(dtype)), dim=-1)  # [B, d]
        out = []
        for b, boxes in enumerate(proposals):
            boxes = boxes.to(device=memory.device, dtype=dtype).reshape(-1, 6)
            inside = boxes_contain(boxes, xyz[b].to(dtype)) & mask[b][None, :]  # [P, M]
            weights = inside.to(dtype) / inside.sum(-1, keepdim=True).clamp(min=1).to(dtype)
            feat = weights @ memory[b] + self.pos(boxes[:, :3]) + self.proposal_size(boxes[:, 3:])
            feat = F.normalize(self.proposal_mlp(feat), dim=-1)
            out.append(self.proposal_logit_scale.exp() * (feat @ qv[b]) + self.proposal_bias)
        return out


def select_boxes(boxes: Tensor, scores: Tensor, multiple: bool, threshold: float = 0.5) -> tuple[Tensor, Tensor]:
    """Pick the answer among candidates boxes [K, 6] with probabilities scores [K].

    Single target (ScanRefer): the best one (K=1; none when there is no candidate). Multiple (Multi3DRefer): all
    with score >= threshold, best first (possibly none: the zero-target answer).
    """
    order = torch.argsort(scores, descending=True, stable=True)
    boxes, scores = boxes[order], scores[order]
    if multiple:
        keep = scores >= threshold
        return boxes[keep], scores[keep]
    return boxes[:1], scores[:1]

"""Cross-Task Adapter (CTA): paper Sec. 3.1, Eq. 1-2, with the Table 6 ablation variants.

The adapter turns the shared encoder's per-frame tokens ``T_base`` into a geometry stream ``T'_geom`` (fed to
the Global-Frame aggregator) and a language stream ``T'_lang`` (fed to the 3D patch construction and the LLM).

Variants (``variant`` argument, Table 6):

* ``none``       -- Eq. 1 only: the two projections ``phi_geom`` / ``phi_lang`` ("w/o CTA").
* ``concat_sa``  -- self-attention over the concatenation ``[T_geom; T_lang]``, split back ("CTA - Concat-SA").
* ``cross_attn`` -- each stream attends to the other ("CTA - w/o Bridge (CA)").
* ``bridge``     -- K learnable bridge tokens (Eq. 2) read both streams, then are written back into both
  streams by cross-attention (the full CTA, K=16 in the paper).

Every block is a pre-norm residual. With ``identity_init=True`` (the default) every path that writes into the
geometry stream ends in a zero-initialised linear layer (or a zero LayerScale for ``concat_sa``), so at
initialisation ``T'_geom`` equals ``T_base`` bit for bit: a model initialised from a VGGT checkpoint reproduces
VGGT exactly. The language stream is ``T_base + MLP(T_base)`` with a normally initialised MLP, so it is not a
copy of the geometry stream (nor a zero function) at initialisation.

Scope: all attention runs over the tokens of ONE frame (``[B*S, N, C]``); frames are mixed later by the
aggregator's global attention. See ``docs/adapter.md``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidllm_core.errors import ConfigError
from vidllm_core.layers.mlp import Mlp

VARIANTS: tuple[str, ...] = ("none", "concat_sa", "cross_attn", "bridge")


class ProjectionMLP(nn.Module):
    """Pre-norm residual 2-layer MLP (Eq. 1's ``phi``): ``x + fc2(GELU(fc1(LayerNorm(x))))``.

    Args:
        dim: token width C.
        mlp_ratio: hidden width is ``mlp_ratio * dim`` (4 in the paper).
        zero_init: zero the last linear layer so the block is an exact identity at initialisation.
        norm_eps: LayerNorm epsilon.
    """

    def __init__(self, dim: int, mlp_ratio: float = 4.0, zero_init: bool = False, norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        if zero_init:
            nn.init.zeros_(self.mlp.fc2.weight)
            nn.init.zeros_(self.mlp.fc2.bias)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: [B, N, C] -> [B, N, C]."""
        return x + self.mlp(self.norm(x))


class CrossAttention(nn.Module):
    """Multi-head attention of ``query`` tokens over ``context`` tokens (self-attention when they are the same).

    Uses ``torch.nn.functional.scaled_dot_product_attention``. Returns the output projection only (the caller
    adds the residual).

    Args:
        dim: token width C (query and context share it).
        num_heads: number of heads; must divide ``dim``.
        qkv_bias: bias on the query / key / value projections.
        zero_out: zero-initialise the output projection (the block then writes exactly 0 at initialisation).
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, zero_out: bool = False) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ConfigError(f"adapter width {dim} is not divisible by its number of heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        if zero_out:
            nn.init.zeros_(self.proj.weight)
            nn.init.zeros_(self.proj.bias)

    def forward(self, query: Tensor, context: Tensor) -> Tensor:
        """``query``: [B, Nq, C], ``context``: [B, Nk, C] -> [B, Nq, C]."""
        b, nq, c = query.shape
        nk = context.shape[1]
        q = self.q(query).reshape(b, nq, self.num_heads, self.head_dim).transpose(1, 2)
        k, v = self.kv(context).reshape(b, nk, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, nq, c))


class CrossTaskAdapter(nn.Module):
    """Cross-Task Adapter (Sec. 3.1): shared tokens -> (geometry stream, language stream).

    Args:
        embed_dim: token width C of the shared encoder (both streams keep it).
        num_heads: attention heads of the adapter's attention blocks (unused by ``variant="none"``).
        variant: one of ``none``, ``concat_sa``, ``cross_attn``, ``bridge`` (Table 6).
        num_bridge_tokens: K, the number of learnable bridge tokens (``bridge`` only; 16 in the paper).
        mlp_ratio: expansion of ``phi_geom`` / ``phi_lang`` (4 in the paper).
        identity_init: make ``T'_geom == T_base`` exactly at initialisation (zero-initialised last layers on
            every write into the geometry stream).
        norm_eps: LayerNorm epsilon.

    Parameter names: ``phi_geom``, ``phi_lang``; ``concat_norm``, ``concat_attn``, ``geom_scale``,
    ``lang_scale`` (concat_sa); ``geom_norm``, ``lang_norm``, ``geom_from_lang``, ``lang_from_geom``
    (cross_attn); ``bridge_tokens``, ``bridge_norm``, ``geom_norm``, ``lang_norm``, ``bridge_from_geom``,
    ``bridge_from_lang``, ``bridge_out_norm``, ``geom_from_bridge``, ``lang_from_bridge`` (bridge).
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int = 8,
        variant: str = "bridge",
        num_bridge_tokens: int = 16,
        mlp_ratio: float = 4.0,
        identity_init: bool = True,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ConfigError(f"unknown adapter variant {variant!r}; expected one of {', '.join(VARIANTS)}")
        if variant == "bridge" and num_bridge_tokens < 1:
            raise ConfigError(f"the bridge adapter needs at least 1 bridge token, got {num_bridge_tokens}")
        if variant != "none" and embed_dim % num_heads != 0:
            raise ConfigError(f"adapter width {embed_dim} is not divisible by its number of heads {num_heads}")
        self.embed_dim = embed_dim
        self.variant = variant
        self.identity_init = identity_init

        # Eq. 1: the two projections.
        self.phi_geom = ProjectionMLP(embed_dim, mlp_ratio, zero_init=identity_init, norm_eps=norm_eps)
        self.phi_lang = ProjectionMLP(embed_dim, mlp_ratio, zero_init=False, norm_eps=norm_eps)

        if variant == "concat_sa":
            self.concat_norm = nn.LayerNorm(embed_dim, eps=norm_eps)
            self.concat_attn = CrossAttention(embed_dim, num_heads)
            # One attention serves both streams, so per-stream LayerScale gates the geometry write.
            self.geom_scale = nn.Parameter(torch.full((embed_dim,), 0.0 if identity_init else 1.0))
            self.lang_scale = nn.Parameter(torch.ones(embed_dim))
        elif variant == "cross_attn":
            self.geom_norm = nn.LayerNorm(embed_dim, eps=norm_eps)
            self.lang_norm = nn.LayerNorm(embed_dim, eps=norm_eps)
            self.geom_from_lang = CrossAttention(embed_dim, num_heads, zero_out=identity_init)
            self.lang_from_geom = CrossAttention(embed_dim, num_heads)
        elif variant == "bridge":
            self.bridge_tokens = nn.Parameter(torch.empty(1, num_bridge_tokens, embed_dim))
            nn.init.trunc_normal_(self.bridge_tokens, std=0.02)
            self.bridge_norm = nn.LayerNorm(embed_dim, eps=norm_eps)
            self.geom_norm = nn.LayerNorm(embed_dim, eps=norm_eps)
            self.lang_norm = nn.LayerNorm(embed_dim, eps=norm_eps)
            self.bridge_from_geom = CrossAttention(embed_dim, num_heads)
            self.bridge_from_lang = CrossAttention(embed_dim, num_heads)
            self.bridge_out_norm = nn.LayerNorm(embed_dim, eps=norm_eps)
            self.geom_from_bridge = CrossAttention(embed_dim, num_heads, zero_out=identity_init)
            self.lang_from_bridge = CrossAttention(embed_dim, num_heads)

    @property
    def num_bridge_tokens(self) -> int:
        """K (0 for the variants without bridge tokens)."""
        return self.bridge_tokens.shape[1] if self.variant == "bridge" else 0

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """Split the shared tokens into the two task streams.

        Args:
            tokens: ``T_base``, [B*S, N, C]: the patch tokens of each frame.

        Returns:
            ``(T'_geom, T'_lang)``, each [B*S, N, C].
        """
        if tokens.ndim != 3 or tokens.shape[-1] != self.embed_dim:
            raise ValueError(f"expected tokens [B*S, N, {self.embed_dim}], got {tuple(tokens.shape)}")
        geom = self.phi_geom(tokens)
        lang = self.phi_lang(tokens)

        if self.variant == "concat_sa":
            n = geom.shape[1]
            joint = self.concat_norm(torch.cat([geom, lang], dim=1))
            update = self.concat_attn(joint, joint)
            geom = geom + self.geom_scale * update[:, :n]
            lang = lang + self.lang_scale * update[:, n:]
        elif self.variant == "cross_attn":
            geom_n, lang_n = self.geom_norm(geom), self.lang_norm(lang)
            geom, lang = geom + self.geom_from_lang(geom_n, lang_n), lang + self.lang_from_geom(lang_n, geom_n)
        elif self.variant == "bridge":
            geom_n, lang_n = self.geom_norm(geom), self.lang_norm(lang)
            bridge = self.bridge_tokens.expand(tokens.shape[0], -1, -1)
            bridge_n = self.bridge_norm(bridge)
            # Eq. 2 (as a residual update of the bridge tokens).
            bridge = bridge + self.bridge_from_geom(bridge_n, geom_n) + self.bridge_from_lang(bridge_n, lang_n)
            bridge_n = self.bridge_out_norm(bridge)
            # Write-back: every stream token reads the updated bridge tokens.
            geom = geom + self.geom_from_bridge(geom_n, bridge_n)
            lang = lang + self.lang_from_bridge(lang_n, bridge_n)
        return geom, lang

"""Camera head: iterative AdaLN-modulated transformer refinement of the absT_quaR_FoV pose encoding (VGGT Sec. 3.3)."""

from __future__ import annotations

import torch
from torch import nn

from vidllm_core.heads.activations import POSE_ACTIVATIONS, activate_pose
from vidllm_core.layers.block import Block
from vidllm_core.layers.mlp import Mlp

POSE_ENCODING_DIM = 9  # absT_quaR_FoV: [tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w]


class CameraHead(nn.Module):
    """Predict one pose encoding per frame from the camera tokens of the last aggregator layer.

    Args:
        dim_in: token width (2 * aggregator embed_dim).
        trunk_depth: transformer blocks in the trunk (attention across the S frames; no qk-norm, no RoPE).
        num_heads: attention heads of the trunk.
        mlp_ratio: MLP ratio of the trunk blocks.
        init_values: LayerScale init of the trunk blocks.
        trans_act, quat_act, fl_act: activations of T, quaternion and FoV (VGGT: linear, linear, relu).
        num_iterations: default number of refinement iterations (VGGT: 4).
    """

    def __init__(
        self,
        dim_in: int = 2048,
        trunk_depth: int = 4,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        init_values: float = 0.01,
        trans_act: str = "linear",
        quat_act: str = "linear",
        fl_act: str = "relu",
        num_iterations: int = 4,
    ) -> None:
        super().__init__()
        for act in (trans_act, quat_act, fl_act):
            if act not in POSE_ACTIVATIONS:
                raise ValueError(f"unknown pose activation {act!r} (expected one of {POSE_ACTIVATIONS})")
        self.trans_act, self.quat_act, self.fl_act = trans_act, quat_act, fl_act
        self.num_iterations = num_iterations
        self.trunk = nn.Sequential(
            *(
                Block(dim_in, num_heads, mlp_ratio=mlp_ratio, init_values=init_values, norm_eps=1e-5)
                for _ in range(trunk_depth)
            )
        )
        self.token_norm = nn.LayerNorm(dim_in, eps=1e-5)
        self.trunk_norm = nn.LayerNorm(dim_in, eps=1e-5)
        self.empty_pose_tokens = nn.Parameter(torch.zeros(1, 1, POSE_ENCODING_DIM))
        self.embed_pose = nn.Linear(POSE_ENCODING_DIM, dim_in)
        self.poseLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim_in, 3 * dim_in))  # noqa: N815 (official key)
        self.adaln_norm = nn.LayerNorm(dim_in, elementwise_affine=False, eps=1e-6)
        self.pose_branch = Mlp(dim_in, hidden_features=dim_in // 2, out_features=POSE_ENCODING_DIM)

    def forward(self, aggregated_tokens_list: list[torch.Tensor], num_iterations: int | None = None) -> list[torch.Tensor]:
        """Refine the pose encoding.

        Args:
            aggregated_tokens_list: aggregator outputs ``[B, S, P, dim_in]``; only the last one's token 0 is used.
            num_iterations: refinement iterations (default: the constructor's).

        Returns:
            list (one per iteration) of activated pose encodings ``[B, S, 9]``; the last one is the prediction.
        """
        iters = self.num_iterations if num_iterations is None else num_iterations
        pose_tokens = self.token_norm(aggregated_tokens_list[-1][:, :, 0])  # [B, S, C]
        b, s, _ = pose_tokens.shape
        pred: torch.Tensor | None = None
        preds: list[torch.Tensor] = []
        for _ in range(iters):
            if pred is None:
                cond = self.embed_pose(self.empty_pose_tokens.expand(b, s, -1))
            else:
                cond = self.embed_pose(pred.detach())
            shift, scale, gate = self.poseLN_modulation(cond).chunk(3, dim=-1)
            x = gate * (self.adaln_norm(pose_tokens) * (1 + scale) + shift) + pose_tokens
            delta = self.pose_branch(self.trunk_norm(self.trunk(x)))
            pred = delta if pred is None else pred + delta
            preds.append(activate_pose(pred, self.trans_act, self.quat_act, self.fl_act))
        return preds

"""README figures for synthrooms: a frame grid (RGB + depth) and a top-down view with object boxes and the camera path.

Reference: issue 3 "Must show" (frame grid PNG and rendered top-down view with boxes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vidllm_core.data.synth.catalog import COLOURS
from vidllm_core.data.synth.dataset import SceneResult


def frame_grid(res: SceneResult, path: str | Path, n: int = 4) -> None:
    """n evenly spaced frames: RGB on the top row, depth (metres, viridis) below, instance ids on the bottom row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = np.linspace(0, len(res.frames) - 1, n).round().astype(int)
    fig, axes = plt.subplots(3, n, figsize=(2.2 * n, 5.2), dpi=100)
    vmax = max(float(res.frames[i].depth.max()) for i in idx)
    for col, i in enumerate(idx):
        fr = res.frames[i]
        axes[0, col].imshow(fr.rgb)
        axes[0, col].set_title(f"frame {i}", fontsize=8)
        axes[1, col].imshow(fr.depth, cmap="viridis", vmin=0, vmax=vmax)
        axes[2, col].imshow(fr.instance, cmap="tab20", interpolation="nearest")
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.text(0.005, 0.83, "RGB", rotation=90, fontsize=8)
    fig.text(0.005, 0.5, f"depth 0-{vmax:.1f} m", rotation=90, fontsize=8)
    fig.text(0.005, 0.17, "instance", rotation=90, fontsize=8)
    fig.tight_layout(pad=0.3)
    fig.savefig(path)
    plt.close(fig)


def top_down(res: SceneResult, path: str | Path) -> None:
    """Floor plan: room outline, every object's oriented footprint in its colour with its id/category, camera path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Polygon

    sc = res.scene
    r = sc.room
    fig, ax = plt.subplots(figsize=(5.5, 5.5 * r.depth / r.width + 0.4), dpi=100)
    ax.add_patch(Polygon([[0, 0], [r.width, 0], [r.width, r.depth], [0, r.depth]], closed=True, fill=False, lw=2))
    for o in sorted(sc.objects, key=lambda o: o.position[2]):
        rgb = np.asarray(COLOURS[o.colour]) / 255
        ax.add_patch(Polygon(o.footprint(), closed=True, facecolor=rgb, edgecolor="k", alpha=0.85, lw=1))
        tip = o.position[:2] + o.front * o.size[1] / 2
        ax.plot([o.position[0], tip[0]], [o.position[1], tip[1]], color="k", lw=0.6)
        ax.text(o.position[0], o.position[1], f"{o.id} {o.category}", fontsize=6, ha="center", va="center",
                color="w" if rgb.mean() < 0.5 else "k")
    t = res.poses[:, :3, 3]
    ax.plot(t[:, 0], t[:, 1], "-", color="tab:red", lw=1.2, label="camera path")
    step = max(1, len(t) // 12)
    for p in res.poses[::step]:
        f = p[:3, 2]
        ax.arrow(p[0, 3], p[1, 3], 0.35 * f[0], 0.35 * f[1], head_width=0.08, color="tab:red", lw=0.8)
    ax.set_xlim(-0.2, r.width + 0.2)
    ax.set_ylim(-0.2, r.depth + 0.2)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_title(f"{sc.scene_id}: {r.width:.2f} x {r.depth:.2f} x {r.height:.2f} m, {len(sc.objects)} objects", fontsize=9)
    ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

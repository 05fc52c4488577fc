"""Plot training curves of several runs side by side (the paper's Fig. 5 comparison: single vs two stages).

    .venv/bin/python scripts/plot_training_curves.py OUT.png LABEL=RUN_DIR [LABEL=RUN_DIR ...] [--smooth 20]

Reads each run's `metrics.jsonl` and draws, per loss group (total, reconstruction, vision-language, metric depth),
a moving average over `--smooth` logged points. Training loss, not a held-out loss: say so wherever it is shown.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

PANELS = (("loss", "total (Eq. 8)"), ("recon", "reconstruction"), ("vl", "vision-language"), ("md", "metric depth"))


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    if len(values) < window:
        return values
    return np.convolve(values, np.ones(window) / window, mode="valid")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("runs", nargs="+", help="LABEL=RUN_DIR")
    parser.add_argument("--smooth", type=int, default=20)
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PANELS), figsize=(4 * len(PANELS), 3.2))
    for spec in args.runs:
        label, run = spec.split("=", 1)
        records = [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines() if line]
        for ax, (key, title) in zip(axes, PANELS):
            pts = [(r["step"], r[key]) for r in records if key in r]
            steps, values = np.array(pts).T
            smooth = moving_average(values, args.smooth)
            ax.plot(steps[len(steps) - len(smooth):], smooth, label=label)
            ax.set_title(title)
            ax.set_xlabel("step")
    axes[0].set_ylabel(f"training loss (moving average of {args.smooth} logs)")
    axes[0].legend()
    fig.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=90)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

"""Training curves (loss and held-out validation loss per stage) from a run's ``metrics.csv``.

    python benchmarks/gpu/plot_training.py benchmarks/results/train_metrics_h200.csv \
        docs/figures/train_curves.png --title "d2ar-default, 1x H200"
"""

from __future__ import annotations

import argparse
import csv

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("metrics")
    ap.add_argument("out")
    ap.add_argument("--title", default="")
    args = ap.parse_args()
    with open(args.metrics) as fh:
        rows = list(csv.DictReader(fh))
    stages = list(dict.fromkeys(r["stage"] for r in rows))
    fig, axes = plt.subplots(1, len(stages), figsize=(5 * len(stages), 3.6))
    for ax, stage in zip(list(axes) if len(stages) > 1 else [axes], stages):
        sel = [r for r in rows if r["stage"] == stage]
        ax.plot([int(r["step"]) for r in sel], [float(r["loss"]) for r in sel], label="train loss")
        val = [r for r in sel if r["val_loss"]]
        ax.plot([int(r["step"]) for r in val], [float(r["val_loss"]) for r in val], "o-",
                label="validation loss (held-out dates)")
        ax.set_yscale("log")
        ax.set_xlabel("optimizer step")
        ax.set_title({"vae": "stage 1: EQ-VAE", "flow": "stage 2: token encoder + flow prior"}.get(stage, stage))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)


if __name__ == "__main__":
    main()

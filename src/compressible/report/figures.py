"""Accuracy vs sparsity, mean ± std over seeds, one line per method (CrAM Fig. 1 style).

Written with fixed metadata so the same summary.csv gives byte-identical PDF and PNG files.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .stats import load_summary, mean_std  # noqa: E402

_PDF_META = {"Creator": "compressible", "Producer": "compressible", "CreationDate": None}
_PNG_META = {"Software": "compressible"}


def accuracy_vs_sparsity(summary_csv, out_stem: str | Path, arch: str, operator: str,
                         methods_order: list[str]) -> list[Path]:
    """Two panels (before / after BNT); writes ``out_stem``.pdf and .png."""
    df = load_summary(summary_csv)
    df = df[(df["arch"] == arch) & (df["compressor"] == operator)]
    plt.rcParams.update({"svg.hashsalt": "compressible", "font.size": 9})
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 2.8), sharey=True)
    for ax, after, title in ((axes[0], False, "before BNT"), (axes[1], True, "after BNT")):
        stats = mean_std(df, after_bnt=after)
        for method in methods_order:
            s = stats[stats["method"] == method]
            if s.empty:
                continue
            x = 100 * s["level_value"]
            ax.plot(x, s["mean"], marker="o", ms=3, label=method)
            ax.fill_between(x, s["mean"] - s["std"], s["mean"] + s["std"], alpha=0.2)
        ax.set_title(f"{arch}, {operator}: {title}")
        ax.set_xlabel("sparsity (%)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    axes[1].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    out_stem = Path(out_stem)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [out_stem.with_suffix(".pdf"), out_stem.with_suffix(".png")]
    fig.savefig(paths[0], metadata=_PDF_META)
    fig.savefig(paths[1], metadata=_PNG_META, dpi=150)
    plt.close(fig)
    return paths

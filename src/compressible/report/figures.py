"""Accuracy vs sparsity, mean ± std over seeds, one line per method (CrAM Fig. 1 style).

When the config reproduces published tables that meet a panel (see :mod:`.overlay`), the
published numbers of our methods' rows are drawn on it as open diamonds in the method's colour
(error bars where the paper gives a std; the dense column at 0 %), labelled "published".
Written with fixed metadata so the same inputs give byte-identical PDF and PNG files.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from . import published as pub  # noqa: E402
from .overlay import shown_numbers  # noqa: E402
from .savefig import save_pdf_png  # noqa: E402
from .stats import finetune_lines, load_summary, mean_std, metric_label  # noqa: E402

PUBLISHED = "published"  # the gid and legend label of the published markers
_MARKER = {"marker": "D", "ms": 4, "mfc": "none", "ls": "none", "mew": 1.0}
_NO_CURVE = "0.4"  # grey: published points of a method with no curve of ours in the panel


def accuracy_vs_sparsity(summary_csv, out_stem: str | Path, arch: str, operator: str,
                         methods_order: list[str], cfg: Optional[dict] = None,
                         published_dir=None) -> list[Path]:
    """Two panels (before / after BNT); writes ``out_stem``.pdf and .png."""
    fig = accuracy_figure(summary_csv, arch, operator, methods_order, cfg, published_dir)
    return save_pdf_png(fig, out_stem)


def accuracy_figure(summary_csv, arch: str, operator: str, methods_order: list[str],
                    cfg: Optional[dict] = None, published_dir=None):
    """The figure itself (for inspection); the caller closes it."""
    df, methods_order = finetune_lines(load_summary(summary_csv), methods_order)
    df = df[(df["arch"] == arch) & (df["compressor"] == operator)]
    plt.rcParams.update({"svg.hashsalt": "compressible", "font.size": 9})
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 2.8), sharey=True)
    drawn = False
    for ax, after, title in ((axes[0], False, "before BNT"), (axes[1], True, "after BNT")):
        colours = _curves(ax, mean_std(df, after_bnt=after), methods_order)
        shown = shown_numbers(cfg, arch, operator, after, published_dir)
        drawn |= _published_points(ax, shown, methods_order, colours)
        ax.set_title(f"{arch}, {operator}: {title}")
        ax.set_xlabel("sparsity (%)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"test {metric_label(df)} (%)")
    _legend(axes[1], drawn)
    fig.tight_layout()
    return fig


def _curves(ax, stats, methods_order: list[str]) -> dict:
    """Our mean ± std lines; returns each plotted method's colour."""
    colours = {}
    for method in methods_order:
        s = stats[stats["method"] == method]
        if s.empty:
            continue
        x = 100 * s["level_value"]
        (line,) = ax.plot(x, s["mean"], marker="o", ms=3, label=method)
        ax.fill_between(x, s["mean"] - s["std"], s["mean"] + s["std"], alpha=0.2)
        colours[method] = line.get_color()
    return colours


def published_points(shown, methods_order: list[str]) -> dict:
    """Per method label: [(sparsity %, value, std or None)] of the published cells it reproduces."""
    points: dict = {}
    for s in shown:
        x = 0.0 if s.cell.compressor == pub.DENSE else _percent(s.cell.level)
        for label in (lb for lb in s.labels if lb in methods_order):
            if x is not None:
                points.setdefault(label, []).append((x, s.number.value, s.number.std))
    return points


def _percent(level) -> Optional[float]:
    try:
        return 100 * float(level)
    except (TypeError, ValueError):
        return None  # a pattern such as 2:4 has no place on a sparsity axis


def _published_points(ax, shown, methods_order: list[str], colours: dict) -> bool:
    points = published_points(shown, methods_order)
    for label, pts in points.items():
        colour = colours.get(label, _NO_CURVE)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], color=colour, gid=PUBLISHED,
                label=f"_{PUBLISHED} {label}", zorder=3, **_MARKER)
        with_std = [p for p in pts if p[2] is not None]
        if with_std:
            ax.errorbar([p[0] for p in with_std], [p[1] for p in with_std], yerr=[p[2] for p in with_std],
                        fmt="none", ecolor=colour, elinewidth=0.8, capsize=2, gid=PUBLISHED, zorder=3)
    return bool(points)


def _legend(ax, published: bool) -> None:
    if not published:
        ax.legend(fontsize=7, loc="lower left")
        return
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], color="0.2", **_MARKER))
    ax.legend(handles, labels + [PUBLISHED], fontsize=7, loc="lower left")

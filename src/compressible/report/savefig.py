"""Writing a figure as PDF and PNG with fixed metadata, so the same inputs give the same bytes.

Matplotlib stamps a creation date into PDFs and its version into both formats by default; fixed
values here keep re-generated figures byte-identical (and DVC/Snakemake from seeing a change).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PDF_META = {"Creator": "compressible", "Producer": "compressible", "CreationDate": None}
PNG_META = {"Software": "compressible"}
PNG_DPI = 150


def save_pdf_png(fig, out_stem: str | Path) -> list[Path]:
    """Write ``out_stem``.pdf and .png (each through a partial file, so an interrupted write
    never leaves a truncated figure), close ``fig`` and return both paths."""
    out_stem = Path(out_stem)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [out_stem.with_suffix(".pdf"), out_stem.with_suffix(".png")]
    for path, meta, extra in ((paths[0], PDF_META, {}), (paths[1], PNG_META, {"dpi": PNG_DPI})):
        tmp = path.with_name(path.name + ".partial")
        fig.savefig(tmp, metadata=meta, format=path.suffix[1:], **extra)
        tmp.replace(path)
    plt.close(fig)
    return paths

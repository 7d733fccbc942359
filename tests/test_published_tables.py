"""Published numbers beside ours in the generated tables and figures: a synthetic summary.csv
meets some cells of CrAM's Table 17 (the real published data); the values, Δ = ours − published
and its dagger are checked against an independent recomputation, "not run" where we have
nothing, cited rows, unchanged output without reproduced cells, LaTeX that compiles, same bytes."""
from __future__ import annotations

import csv
import hashlib
import json
import statistics
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import scipy.stats

from compressible.config import load_config
from compressible.report.aggregate import COLUMNS
from compressible.report.figures import PUBLISHED, accuracy_figure, accuracy_vs_sparsity
from compressible.report.published import published_value
from compressible.report.tables import accuracy_table
from test_report import assert_compiles

ROOT = Path(__file__).resolve().parents[1]
METHODS = ["SGD", "SAM", "CrAM+-Multi", "SFW"]  # the default config's labels; SAM has no results
DENSE = {0: 92.9, 1: 93.3}  # per seed
# (method, level) -> per seed: (before BNT, [BNT trials]); table17 also has 60 % and 80 %: not run
RUNS = {
    ("SGD", "0.5"): {0: (70.0, [92.0, 92.4]), 1: (71.0, [92.2, 92.2])},  # Δ +0.0, reproduced
    ("SGD", "0.7"): {0: (60.0, [80.0, 81.0]), 1: (61.0, [80.0, 81.0])},  # Δ -7.5, deviates
    ("SGD", "0.9"): {0: (20.0, [40.0, 41.0]), 1: (21.0, [42.0, 43.0])},  # Δ -4.3, interval ±6.4: inconclusive
    ("CrAM+-Multi", "0.5"): {0: (90.0, [93.0, 93.1]), 1: (90.2, [93.2, 93.3])},
    ("CrAM+-Multi", "0.7"): {0: (91.0, [92.8, 92.9]), 1: (91.0, [92.9, 93.0])},
    ("CrAM+-Multi", "0.9"): {0: (40.0, [89.0, 89.5]), 1: (41.0, [90.0, 90.5])},
    ("SFW", "0.5"): {0: (88.0, [90.0, 90.0]), 1: (88.0, [90.0, 91.0])},
}
COLUMN = {"0.5": "50%", "0.7": "70%", "0.9": "90%"}


def summary_rows(arch: str = "resnet20") -> list[dict]:
    rows = []
    for (method, level), seeds in RUNS.items():
        for seed, (before, trials) in seeds.items():
            base = {"experiment": "default", "dataset": "mnist_embedded", "arch": arch, "method": method,
                    "seed": seed, "compressor": "global_magnitude", "level": level, "prunable": "weights",
                    "loss": 0.5, "dense_accuracy": DENSE[seed], "sparsity_prunable": level,
                    "sparsity_total": level, "compression_ratio": 2, "flops_ratio": 0.5, "speedup": 2,
                    "params_remaining": 10, "relative_distance": 0.1}
            rows.append(dict(base, bnt_trial="", bnt_seed="", accuracy=before))
            rows += [dict(base, bnt_trial=t, bnt_seed=100 + t, accuracy=a) for t, a in enumerate(trials)]
    return rows


def write_summary(path: Path, arch: str = "resnet20") -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(summary_rows(arch))
    return path


@pytest.fixture
def summary(tmp_path) -> Path:
    return write_summary(tmp_path / "summary.csv")


PAPER_ARCH = "resnet20_b"  # Table 17's setup: the authors' ResNet-20 on CIFAR-10, 200 epochs (baseline 400)


@pytest.fixture
def paper_scale(tmp_path) -> Path:
    """The same numbers as if the default's methods had run Table 17's setup, so they are judged."""
    return write_summary(tmp_path / "paper_scale.csv", PAPER_ARCH)


def config(reproduces, paper_setup: bool = False) -> dict:
    """The default's resolved config; with ``paper_setup``, moved to Table 17's setup."""
    cfg = load_config(ROOT / "configs" / "default.yaml").resolved
    if paper_setup:
        methods = [dict(m, epochs=400 if m["label"] == "SGD" else 200) for m in cfg["methods"]]
        cfg = dict(cfg, dataset=dict(cfg["dataset"], name="cifar10"), archs=[{"name": PAPER_ARCH, "width": None}],
                   methods=methods)
    return dict(cfg, reproduces=reproduces)


def render(summary, out, after_bnt: bool, reproduces=("cram/table17",), paper_setup: bool = False, **kw) -> str:
    cfg = config(list(reproduces), paper_setup) if reproduces is not None else None
    arch = PAPER_ARCH if paper_setup else "resnet20"
    return accuracy_table(summary, out, arch, "global_magnitude", after_bnt, METHODS, cfg=cfg, **kw).read_text()


def grid(tex: str) -> dict:
    """{row label: {column header: cell}} of the rendered tabular; a published row is keyed
    'method / its label', the method being the row of ours above it."""
    lines = [ln.removesuffix(" \\\\") for ln in tex.splitlines() if " & " in ln]
    header, rows, method = lines[0].split(" & "), {}, None
    for cells in (ln.split(" & ") for ln in lines[1:]):
        label = cells[0]
        method = method if label.startswith("\\quad") else label
        key = f"{method} / {label}" if label.startswith("\\quad") else label
        assert key not in rows, f"two rows {key}"
        rows[key] = dict(zip(header[1:], cells[1:]))
    return rows


def published_row(method: str, table: str, row: str = "") -> str:
    return f"{method} / " + "\\quad{\\footnotesize published: cram/" + table + (f", {row}" if row else "") + "}"


def expected(values: list, paper: str, column: str) -> str:
    """The published cell recomputed here from per-seed values: value, std as printed, Δ to one
    decimal, † where Welch's 95 % t interval of Δ lies wholly outside ±0.5 pp (Table 17: n 3)."""
    number = published_value("cram", "table17", "cifar10_resnet20", paper, column)
    mean, std = statistics.fmean(values), statistics.stdev(values)
    delta = mean - number.value
    v_ours, v_paper = std ** 2 / len(values), (number.std or 0.0) ** 2 / 3
    half = 0.0  # equal seeds and no published std: the interval is the point
    if v_ours + v_paper > 0:
        df = (v_ours + v_paper) ** 2 / (v_ours ** 2 / (len(values) - 1) + v_paper ** 2 / 2)
        half = scipy.stats.t.ppf(0.975, df) * (v_ours + v_paper) ** 0.5
    dagger = "^{\\dagger}" if abs(delta) - half > 0.5 + 1e-9 else ""
    value = f"{number.value:.1f}" + (f" \\pm {number.std:.1f}" if number.std is not None else "")
    shown = f"{delta:+.1f}".replace("-0.0", "+0.0")  # a difference that rounds to zero has no sign
    return f"{{\\footnotesize ${value}$ ($\\Delta\\,{{{shown}}}{dagger}$)}}"


def trials(method: str, level: str) -> list:
    """One value per seed: the mean of its BNT trials (trials of one model are not independent)."""
    return [statistics.fmean(ts) for _, ts in RUNS[(method, level)].values()]


def befores(method: str, level: str) -> list:
    return [b for b, _ in RUNS[(method, level)].values()]


def test_published_values_and_delta_sit_under_our_cells(paper_scale, tmp_path):
    cells = grid(render(paper_scale, tmp_path / "t.tex", True, paper_setup=True))
    assert list(cells["SGD"]) == ["Dense", "50\\%", "60\\%", "70\\%", "80\\%", "90\\%"]
    baseline = cells[published_row("SGD", "table17", "Baseline")]  # our SGD reproduces the paper's Baseline row
    for level, column in COLUMN.items():
        assert baseline[column.replace("%", "\\%")] == expected(trials("SGD", level), "Baseline", column)
        multi = cells[published_row("CrAM+-Multi", "table17")][column.replace("%", "\\%")]
        assert multi == expected(trials("CrAM+-Multi", level), "CrAM+-Multi", column)
    assert baseline["Dense"] == expected(list(DENSE.values()), "Baseline", "dense")
    # the dagger by hand: 41.5 - 45.8 = -4.3 with se √(1.41²/2 + 3.0²/3) = 2.0, ν 2.9, ±6.4: no †;
    # 80.5 - 88.0 = -7.5, our seeds equal, the paper's std small: wholly below -0.5
    assert "{+0.0}$" in baseline["50\\%"] and "{-4.3}$" in baseline["90\\%"] and "{-7.5}^{\\dagger}" in baseline["70\\%"]


def test_a_stand_in_run_gets_its_delta_but_no_verdict(summary, tmp_path):
    """The default's runs (MNIST, half-width ResNet-20, 4 epochs) are not Table 17's setup: the
    Δ is printed, marked stand-in, and the 7.5 pp gap that deviates at paper scale gets no †."""
    cells = grid(render(summary, tmp_path / "t.tex", True))
    baseline = cells[published_row("SGD", "table17", "Baseline")]
    assert baseline["70\\%"].endswith("{-7.5}$, stand-in)}")
    assert not any("dagger" in cell for row in cells.values() for cell in row.values())


def test_published_cells_without_a_run_of_ours_say_not_run(summary, tmp_path):
    cells = grid(render(summary, tmp_path / "t.tex", True))
    assert cells["SGD"]["60\\%"] == cells["SGD"]["80\\%"] == "not run"
    assert cells[published_row("SGD", "table17", "Baseline")]["60\\%"] == "{\\footnotesize $91.0 \\pm 0.3$}"  # no Δ
    # SAM has no result at all: every published column is not run, its published row has no Δ
    assert set(cells["SAM"].values()) == {"not run"}
    sam = cells[published_row("SAM", "table17")]
    assert sam["Dense"] == "{\\footnotesize $93.5 \\pm 0.1$}" and "Delta" not in "".join(sam.values())
    # SFW has no published counterpart: its cells as in the table without published numbers
    plain = grid(render(summary, tmp_path / "plain.tex", True, reproduces=None))
    assert cells["SFW"]["50\\%"] == plain["SFW"]["50\\%"] == "$90.2 \\pm 0.5$"
    assert cells["SFW"]["70\\%"] == plain["SFW"]["70\\%"] == "--"
    # the dense column is ours too, for every method (all share one dense accuracy here: all best)
    dense = f"{statistics.fmean(DENSE.values()):.1f} \\pm {statistics.stdev(DENSE.values()):.1f}"
    assert cells["SFW"]["Dense"] == cells["SGD"]["Dense"] == f"$\\mathbf{{{dense}}}$"


def test_before_bnt_table_shows_the_papers_before_bnt_numbers(paper_scale, tmp_path):
    cells = grid(render(paper_scale, tmp_path / "t.tex", False, paper_setup=True))
    multi = cells[published_row("CrAM+-Multi", "table17")]
    assert multi["70\\%"] == expected(befores("CrAM+-Multi", "0.7"), "CrAM+-Multi", "70% before BNT")
    assert multi["90\\%"] == expected(befores("CrAM+-Multi", "0.9"), "CrAM+-Multi", "90% before BNT")
    assert multi["50\\%"] == "" and "60\\%" not in multi  # table17 gives no 50 % or 60 % before BNT
    assert cells["CrAM+-Multi"]["70\\%"] == "$\\mathbf{91.0 \\pm 0.0}$"  # above SGD's 60.5


def test_rows_the_paper_only_cites_are_marked(summary, tmp_path):
    tex = render(summary, tmp_path / "t.tex", True, reproduces=("cram/table6",))
    cells = grid(tex)
    dpf = cells["{\\footnotesize DPF (cram/table6, cited)}"]
    assert dpf["90\\%"] == "{\\footnotesize $90.9 \\pm 0.1$}" and dpf["95\\%"] == "{\\footnotesize $88.0 \\pm 0.3$}"
    assert "\\midrule\n{\\footnotesize DPF" in tex
    # the dense CrAM+-Multi token lost its std's digit in the paper's text: the value alone
    assert cells[published_row("CrAM+-Multi", "table6")]["Dense"].startswith("{\\footnotesize $92.9$ (")


def test_papers_rows_this_config_does_not_train_are_not_run(summary, tmp_path):
    cfg = config(["cram/table17"])
    cfg["methods"] = [m for m in cfg["methods"] if m["label"] != "SAM"]
    tex = accuracy_table(summary, tmp_path / "t.tex", "resnet20", "global_magnitude", True, METHODS, cfg=cfg).read_text()
    sam = grid(tex)["{\\footnotesize SAM (cram/table17, not run)}"]
    assert sam["90\\%"] == "{\\footnotesize $54.6 \\pm 1.7$}"


@pytest.mark.parametrize("reproduces", [None, [], ["cram/table17/claims"], ["cram/table18"]])
def test_without_reproduced_cells_the_table_is_unchanged(summary, tmp_path, reproduces):
    """No config, claims only (the embedded default) or a table of other architectures."""
    plain = accuracy_table(summary, tmp_path / "a.tex", "resnet20", "global_magnitude", True, METHODS).read_bytes()
    cfg = None if reproduces is None else config(reproduces)
    again = accuracy_table(summary, tmp_path / "a.tex", "resnet20", "global_magnitude", True, METHODS, cfg=cfg)
    assert again.read_bytes() == plain


@pytest.mark.parametrize("after_bnt", [True, False])
def test_table_with_published_rows_compiles(summary, tmp_path, after_bnt):
    render(summary, tmp_path / "table.tex", after_bnt, reproduces=("cram/table17", "cram/table6"))
    assert_compiles(tmp_path)


def test_figure_draws_the_published_points(summary):
    fig = accuracy_figure(summary, "resnet20", "global_magnitude", METHODS, config(["cram/table17"]))
    try:
        before, after = fig.axes[:2]
        curves = {ln.get_label(): ln.get_color() for ln in after.lines if ln.get_gid() != PUBLISHED}
        points = {ln.get_label(): ln for ln in after.lines if ln.get_gid() == PUBLISHED}
        sgd = points[f"_{PUBLISHED} SGD"]
        columns = ["dense", "50%", "60%", "70%", "80%", "90%"]
        assert list(sgd.get_xdata()) == [0.0, 50.0, 60.0, 70.0, 80.0, 90.0]
        assert list(sgd.get_ydata()) == [published_value("cram", "table17", "cifar10_resnet20", "Baseline", c).value
                                         for c in columns]
        assert sgd.get_color() == curves["SGD"] and sgd.get_marker() == "D"
        assert "SAM" not in curves and f"_{PUBLISHED} SAM" in points  # no curve of ours, still drawn
        assert PUBLISHED in [t.get_text() for t in after.get_legend().get_texts()]
        multi = next(ln for ln in before.lines if ln.get_label() == f"_{PUBLISHED} CrAM+-Multi")
        assert list(multi.get_xdata()) == [0.0, 70.0, 90.0] and list(multi.get_ydata()) == [93.2, 91.9, 50.5]
    finally:
        plt.close(fig)


def test_figures_are_byte_identical_and_unchanged_without_published_cells(summary, tmp_path):
    def digests(tag, reproduces):
        cfg = None if reproduces is None else config(reproduces)
        paths = accuracy_vs_sparsity(summary, tmp_path / tag / "fig", "resnet20", "global_magnitude", METHODS, cfg)
        return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]

    published = digests("a", ["cram/table17"])
    assert published == digests("b", ["cram/table17"])
    assert digests("c", None) == digests("d", ["cram/table17/claims"]) != published


def test_cli_tables_and_figures_read_the_configs_reproduces(summary, tmp_path, monkeypatch):
    from compressible.cli import main

    (tmp_path / "cfg.json").write_text(json.dumps(config(["cram/table17"])))
    monkeypatch.chdir(tmp_path)  # the commands write under the working directory, as in a job
    for command in ("tables", "figures"):
        assert main([command, "--config", "cfg.json", "--summary", str(summary),
                     "--published", str(ROOT / "configs" / "published")]) == 0
    tex = (tmp_path / "paper_tables/default/resnet20_global_magnitude_bnt.tex").read_text()
    stand_in = expected(trials("SGD", "0.5"), "Baseline", "50%").replace("$)}", "$, stand-in)}")  # the default's setup
    assert grid(tex)[published_row("SGD", "table17", "Baseline")]["50\\%"] == stand_in
    assert (tmp_path / "figures/default/accuracy_vs_sparsity_resnet20_global_magnitude.pdf").stat().st_size > 1000

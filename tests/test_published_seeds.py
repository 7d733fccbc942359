"""The seed check: every table number is the text's cell at its table, row label and column; a
token moved to the next column, two rows' labels swapped or a wrong cell in the data all fail;
every claim's sentence stands in the text; every table of the texts is stored or excluded. Also
the names the published rows use: registered, or their table says what is pending."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from compressible import registry
from compressible.report import published as pub
from compressible.report import seed_check as sc
from test_published import PUBLISHED, seeds_dir

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def papers():
    return pub.load_all(PUBLISHED)


@pytest.fixture(scope="module")
def texts(papers):
    folder = seeds_dir()
    return {name: pub.seed_text(paper, folder) for name, paper in papers.items()}


# ---------------------------------------------------------------- reading the texts' tables

HAND_MADE = """(1) |
$$\\|\\mathbf{v}\\|_0 = K$$
Model | Dense | Sparsity | |
50% | 70% | |
SGD | 70.4 | 68.9 | 67.0 |
SAM | 70.5 | 69.2 | 67.4 |
Architecture | BNT | 50% | 90% |
ResNet18 | No | 95.70.1 | 93.60.7 |
Yes | 95.60.0 | 95.50.1 |
VGG-16 | No | 94.20.1 | 86.71.6 |
Yes | 94.20.1 | 94.00.1 |
Text between tables.
Ratios\t50%\t70%
SFW (ours)\t93.10\t-
"""


def test_tables_are_counted_in_order_and_split_where_a_header_follows_data():
    tables = sc.text_tables(HAND_MADE)
    assert [t.position for t in tables] == [1, 2, 3]
    assert tables[0].header == ["Model | Dense | Sparsity | |", "50% | 70% | |"]
    assert [r.label for r in tables[0].rows] == ["SGD", "SAM"]
    assert tables[0].row("SAM").cells[2] == "69.2"


def test_merged_label_cells_are_filled_from_the_row_above():
    table = sc.text_tables(HAND_MADE)[1]
    assert [r.label for r in table.rows] == ["ResNet18 | No", "ResNet18 | Yes", "VGG-16 | No", "VGG-16 | Yes"]
    yes = table.row("VGG-16 | Yes")
    assert yes.cells[2:4] == ["94.20.1", "94.00.1"] and yes.line == "Yes | 94.20.1 | 94.00.1 |"


def test_tab_separated_tables_count_and_missing_values_are_not_printed_cells():
    table = sc.text_tables(HAND_MADE)[2]
    assert table.row("SFW (ours)").cells == ["SFW (ours)", "93.10", "-"]
    assert table.value_cells() == [("SFW (ours)", 1)]


def test_an_ambiguous_or_unknown_label_names_the_rows():
    table = sc.text_tables(HAND_MADE + "Model | Dense |\nSGD | 1.0 |\nSGD | 2.0 |\n")[3]
    with pytest.raises(LookupError, match=r"table 4 has 2 rows labelled 'SGD'"):
        table.row("SGD")
    with pytest.raises(LookupError, match=r"0 rows labelled 'Adam'; its rows: 'SGD', 'SGD'"):
        table.row("Adam")


# ---------------------------------------------------------------- the data against the texts

def test_every_table_number_is_the_texts_cell(papers, texts):
    located = 0
    for name, paper in papers.items():
        assert sc.number_problems(paper, texts[name]) == []
        located += sum(n.source is not None for n in pub.iter_numbers({name: paper}))
    assert located > 450  # CrAM's 20 tables and the SFW slides' one


def test_every_claim_has_its_sentence_in_the_text(papers, texts):
    claims = list(pub.iter_claims(papers))
    assert claims and all(len(c.sentence.split()) >= 5 for c in claims)
    for name, paper in papers.items():
        assert sc.claim_problems(paper, texts[name]) == []


def test_every_table_of_the_texts_is_stored_or_excluded(papers, texts):
    found = {name: sc.completeness(paper, texts[name]) for name, paper in papers.items()}
    assert found["cram"] == {n: ("stored", f"table{n}") for n in range(1, 21)}
    assert found["sfw_pruning"] == {1: ("stored", "comparison")}
    assert found["ca_sfw"] == {}  # its text holds no table
    for name, paper in papers.items():
        assert sc.completeness_problems(paper, texts[name]) == []


def _cells(line: str) -> list:
    return line.split(" | ")


def _move_to_next_column(text: str, line: str, index: int) -> str:
    """The text with the token of cell ``index`` of ``line`` moved into the next cell (swapped)."""
    cells = _cells(line)
    cells[index], cells[index + 1] = cells[index + 1], cells[index]
    assert text.count(line) == 1
    return text.replace(line, " | ".join(cells))


@pytest.mark.parametrize("line, index, where", [
    ("SGD | 70.4 | 68.9 | 67.0 | 62.3 | 50.1 |", 2, "table 2, row 'SGD', cell 2"),
    ("Yes | 94.20.1 | 94.20.1 | 94.00.1 | 94.00.2 | 94.1 0.1 | 93.80.2 | 93.00.2 |", 3,
     "table 18, row 'VGG-16 | Yes', cell 4"),  # a merged label: the text's cell 3 is the row's 4
    ("CrAM+-Multi | one-shot magnitude | 88.3 | 88.1 | 86.8 | 82.5 |", 4, "table 5, row 'CrAM+-Multi | one-shot magnitude', cell 4"),
])
def test_a_token_moved_to_the_next_column_fails(papers, texts, line, index, where):
    moved = _move_to_next_column(texts["cram"], line, index)
    found = sc.number_problems(papers["cram"], moved)
    assert any(where in p for p in found), found
    assert sc.number_problems(papers["cram"], texts["cram"]) == []


def test_a_token_moved_in_the_tab_separated_table_fails(papers, texts):
    text = texts["sfw_pruning"]
    line = next(ln for ln in text.splitlines() if ln.startswith("One-Cycle Pruning"))
    cells = line.split("\t")
    cells[3], cells[4] = cells[4], cells[3]
    found = sc.number_problems(papers["sfw_pruning"], text.replace(line, "\t".join(cells)))
    assert any("row 'One-Cycle Pruning (Hubens et al., 2021)', cell 3 reads '90.72'" in p for p in found), found


def test_two_rows_labels_swapped_fail(papers, texts):
    text = texts["cram"]
    sgd, sam = "SGD | 76.8 | 75.4 |", "SAM | 76.9 | 75.8 |"  # Table 3
    swapped = text.replace(sgd, "@").replace(sam, "SGD" + sam[3:]).replace("@", "SAM" + sgd[3:])
    found = sc.number_problems(papers["cram"], swapped)
    assert any("table 3, row 'SGD', cell 1 reads '76.9'" in p for p in found), found
    assert any("table 3, row 'SAM', cell 1 reads '76.8'" in p for p in found), found


def test_a_wrong_cell_in_the_data_fails_though_its_token_stands_in_the_row(tmp_path, texts):
    """The 50 % token moved into the 70 % cell: it still occurs in the row's line (the load's own
    check passes), but not at the 70 % column."""
    raw = yaml.safe_load((PUBLISHED / "cram.yaml").read_text())
    cells = raw["tables"]["table2"]["numbers"][0]["cells"]
    cells["70%"] = dict(cells["50%"])
    path = tmp_path / "cram.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False))
    found = sc.number_problems(pub.load_paper(path), texts["cram"])
    assert found == [f"{path}: tables.table2.numbers.0.cells.70%: table 2, row 'SGD', cell 4 "
                     "reads '62.3', not the token '68.9'"]


def test_a_claim_sentence_not_in_the_text_and_a_table_neither_stored_nor_excluded_fail(tmp_path, texts):
    raw = yaml.safe_load((PUBLISHED / "cram.yaml").read_text())
    raw["tables"]["table12"]["claims"] = [dict(raw["tables"]["table11"]["claims"][0],
                                               sentence="Even before BNT, CrAM keeps far more accuracy.")]
    del raw["tables"]["table19"]
    raw["excluded"] = [{"table": 21, "reason": "no such table"}]
    path = tmp_path / "cram.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False))
    found = sc.problems(pub.load_paper(path), texts["cram"])
    assert any("claims.0: its sentence 'Even before BNT" in p for p in found)
    assert any("the text's table 19 is missing" in p for p in found)
    assert any("table 21 is named, but the text has 20 tables" in p for p in found)


def test_an_excluded_table_that_is_also_stored_is_refused(tmp_path):
    raw = yaml.safe_load((PUBLISHED / "cram.yaml").read_text())
    raw["excluded"] = [{"table": 20, "reason": "speed-ups"}]
    path = tmp_path / "cram.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False))
    with pytest.raises(pub.PublishedError, match=r"key 'excluded.0': table 20 is stored as table20"):
        pub.load_paper(path)


def test_a_column_without_a_cell_index_is_refused(tmp_path):
    raw = yaml.safe_load((PUBLISHED / "cram.yaml").read_text())
    del raw["tables"]["table7"]["source"]["columns"]["60%"]
    path = tmp_path / "cram.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False))
    with pytest.raises(pub.PublishedError, match=r"table7.numbers.0.cells.60%': column '60%' has no cell index"):
        pub.load_paper(path)


# ---------------------------------------------------------------- what the data says

# The margins given to the papers' words (configs/published/cram.yaml's header, docs/reproduction.md).
WORDS = {"substantially": 1.0, "significantly": 1.0, "huge": 1.0, "greatly": 10.0, "more than 2%": 2.0,
         "preserves": 0.5, "preserve": 0.5, "maintain": 0.5, "maintaining": 0.5, "match": 0.5,
         "do not lose": 0.5, "without loss": 0.5, "accurately": 0.5, "minor": 1.0, "small": 1.0}


def test_the_papers_words_get_the_documented_margins(papers):
    """A claim with a margin or tolerance quotes the word of its sentence that sets it, and gets
    that word's margin; an ordering without such a word ("outperform", "higher") gets none."""
    for claim in pub.iter_claims(papers):
        quoted = re.findall(r'"([^"]+)":', claim.text)
        if quoted:
            assert quoted[0] in WORDS and quoted[0].split()[0] in claim.sentence, claim.ref
            assert claim.threshold == WORDS[quoted[0]], claim.ref
        else:
            assert claim.kind == "greater" and claim.threshold == 0.0, claim.ref


def test_table16s_baseline_is_the_downloaded_weights_and_each_dense_baseline_its_own_setup(papers):
    cram = papers["cram"]
    baseline = pub.published_value("cram", "table16", "imagenet_resnet18_finetune", "Baseline", "ResNet18 dense", PUBLISHED)
    assert (baseline.value, baseline.cell.method, baseline.cell.epochs) == (69.8, "sgd", 0)  # evaluated as given
    sgd = pub.published_value("cram", "table2", "imagenet_resnet18_finetune", "SGD", "dense", PUBLISHED)
    assert (sgd.value, sgd.cell.method, sgd.cell.setup.epochs) == (70.4, "sgd", 10)
    dense = {n.value: n.cell.setup for t in ("text-4.1", "table11", "table13") for n in cram.tables[t].numbers
             if n.cell.method == "sgd" and n.cell.compressor == pub.DENSE}
    assert {v: (s.name, s.epochs) for v, s in dense.items()} == {
        76.95: ("imagenet_resnet50_sgd100", 100), 77.22: ("imagenet_resnet50_sgd200", 200),
        77.3: ("imagenet_resnet50_sgd200", 200)}


def test_bert_tables_are_data_with_the_interfaces_names(papers):
    cram = papers["cram"]
    setup = cram.setups["squad_bert_base"]
    assert (setup.dataset, setup.arch, setup.epochs) == ("squad", "bert", 3)
    counts = {t: len(cram.tables[t].numbers) for t in ("table4", "table5", "table19", "table20")}
    assert counts == {"table4": 35, "table5": 30, "table19": 25, "table20": 20}  # 110 printed numbers
    assert not any(cram.tables[t].pending for t in counts)  # registered now; table 20's rows are data only
    assert not any(cell.reproducible for cell in (n.cell for n in cram.tables["table20"].numbers))
    assert {n.cell.metric for t in ("table4", "table5", "table19") for n in cram.tables[t].numbers} == {"f1"}
    cell = {(n.cell.row, n.cell.column): n.cell for n in cram.tables["table5"].numbers}
    magnitude, obert, tuned = (cell[(r, "70%")] for r in ("CrAM+-Multi", "CrAM+-Multi oBERT", "CrAM+-Multi oBERT + fine-tune"))
    assert (magnitude.compressor, magnitude.level, magnitude.finetune) == ("uniform_magnitude", 0.7, False)
    assert (obert.compressor, obert.level, obert.finetune, obert.params) == ("obert", 0.7, False, {"base": "adam"})
    assert (tuned.compressor, tuned.finetune) == ("obert", True)
    p = next(n.cell for n in cram.tables["table19"].numbers if n.cell.row == "p(Adam) = 0.3")
    assert (p.method, p.params) == ("cram_plus_multi", {"base": "adam", "p_base": 0.3})
    speedups = [n for n in cram.tables["table20"].numbers if n.cell.metric == "speedup"]
    assert len(speedups) == 10 and not any(n.cell.reproducible for n in cram.tables["table20"].numbers)
    assert pub.parse_token("2.3x") == (2.3, None)


def _unregistered(table: pub.Table) -> set:
    import compressible.compress  # noqa: F401  (registers what the names below look up)
    import compressible.data  # noqa: F401
    import compressible.models  # noqa: F401
    import compressible.optim  # noqa: F401
    from compressible.compress.prunable import PRUNABLE_SETS

    names = set()
    for number in table.numbers:
        c = number.cell
        wanted = [(registry.MODELS, c.setup.arch), (registry.DATASETS, c.setup.dataset)]
        if c.reproducible:
            wanted += [(registry.METHODS, c.method), (PRUNABLE_SETS, c.prunable)]
            wanted += [] if c.compressor == pub.DENSE else [(registry.COMPRESSORS, c.compressor)]
        names |= {name for reg, name in wanted if name is not None and name not in reg.names()}
    for claim in table.claims:
        names |= {c.compressor for pair in claim.pairs for c in pair
                  if c.reproducible and c.compressor != pub.DENSE and c.compressor not in registry.COMPRESSORS.names()}
    return names


def test_every_published_name_is_registered_or_its_table_says_what_is_pending(papers):
    for paper in papers.values():
        for table in paper.tables.values():
            missing = _unregistered(table)
            if table.pending:
                assert missing, f"{paper.name}/{table.name} is marked pending ({table.pending}) but all its names exist now"
            else:
                assert not missing, f"{paper.name}/{table.name} names unregistered {sorted(missing)}"
    # the one pending table today: SFW-pruning's random-pruning baseline (no random operator yet)
    assert [(p.name, t.name) for p in papers.values() for t in p.tables.values() if t.pending] == [
        ("sfw_pruning", "figure-unstructured-random")]


def test_the_report_on_pending_tables_says_not_run(tmp_path):
    """An image experiment's summary against the BERT tables: nothing matches (methods over Adam,
    the bert architecture, oBERT, the finetune flag), nothing crashes, every reproducible cell is
    not run and the cited and speed-up rows are shown, never judged."""
    import csv

    from compressible.config import load_config
    from compressible.report.aggregate import COLUMNS
    from compressible.report.reproduction import build_report
    from test_published_tables import summary_rows

    summary = tmp_path / "summary.csv"
    with open(summary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(summary_rows())
    cfg = dict(load_config(ROOT / "configs" / "default.yaml").resolved,
               reproduces=["cram/table4", "cram/table5", "cram/table19", "cram/table20"])
    text = build_report(summary, cfg, PUBLISHED)
    rows = [ln.split(" | ") for ln in text.splitlines() if ln.startswith("| ") and " | bert | " in ln]
    verdicts = [r[-2] for r in rows]
    assert len(rows) == 110 and set(verdicts) == {"not run", "cited"}
    assert verdicts.count("cited") == 18 + 20  # Table 5's gradual methods (two N.A.), Table 20
    assert "no method `cram_plus_multi` (base=adam, p_base=0.3) in this config" in text
    assert "0 of 72 numbers reproduced (72 not run)" in text


def test_an_excluded_table_counts_as_complete_with_its_reason(tmp_path, texts):
    raw = yaml.safe_load((PUBLISHED / "cram.yaml").read_text())
    del raw["tables"]["table20"]
    raw["excluded"] = [{"table": 20, "reason": "speed-ups of a sparse-inference engine"}]
    path = tmp_path / "cram.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False))
    paper = pub.load_paper(path)
    assert sc.completeness(paper, texts["cram"])[20] == ("excluded", "speed-ups of a sparse-inference engine")
    assert sc.completeness_problems(paper, texts["cram"]) == []

"""End to end: the real Snakemake DAG on the BERT / SQuAD task (tests/configs/bert_tiny.yaml).

A copy of the project gets a tiny BERT folder (2 layers, hidden size 32, its own WordPiece
vocabulary) and synthetic SQuAD-format files (tests/bert_fixtures.py); `snakemake` then prepares,
trains, prunes one-shot, aggregates and draws as for the image experiments.
"""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from bert_fixtures import write_bert_folder, write_squad
from clones import copy_files, isolated_env, run

pytest.importorskip("transformers")
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("bert_dag")]
TINY = Path(__file__).parent / "configs" / "bert_tiny.yaml"


@pytest.fixture(scope="module")
def dag(tmp_path_factory) -> tuple[Path, dict, str]:
    """The project copy after `snakemake` ran the tiny BERT config: (copy, config, output)."""
    repo = copy_files(tmp_path_factory.mktemp("project"))
    cfg = yaml.safe_load(TINY.read_text())
    write_bert_folder(repo / cfg["archs"][0]["pretrained"])
    cfg["dataset"]["sha256"] = write_squad(repo / cfg["dataset"]["root"])
    (repo / "bert_tiny.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = isolated_env(tmp_path_factory.mktemp("home"))
    output = run(["snakemake", "--cores", "2", "--configfile", "bert_tiny.yaml"], repo, env)
    return repo, cfg, output


def summary_rows(repo: Path) -> list[dict]:
    with open(repo / "results/bert_tiny/summary.csv") as handle:
        return list(csv.DictReader(handle))


def test_summary_names_the_metrics_and_holds_scores(dag):
    repo, cfg, _ = dag
    rows = summary_rows(repo)
    runs = len(cfg["methods"]) * len(cfg["seeds"])
    # uniform magnitude and oBERT, and oBERT's levels again finetuned
    levels = sum(len(entry["levels"]) * (2 if "finetune" in entry else 1) for entry in cfg["oneshot"])
    assert len(rows) == runs * levels * 2  # f1 and exact match per measurement, no BNT trial
    assert {r["metric"] for r in rows} == {"f1", "exact_match"}
    assert "accuracy" not in rows[0] and "dense_accuracy" not in rows[0]
    for row in rows:
        assert 0.0 <= float(row["value"]) <= 100.0 and 0.0 <= float(row["dense_value"]) <= 100.0
        assert row["bnt_trial"] == ""
    by_metric = {(r["method"], r["compressor"], r["level"], r["metric"]): float(r["value"]) for r in rows}
    for (method, compressor, level, metric), value in by_metric.items():
        if metric == "exact_match":  # an exact answer scores F1 100 too: EM <= F1
            assert value <= by_metric[(method, compressor, level, "f1")] + 1e-6


def test_obert_prunes_to_the_level_and_updates_the_weights_it_keeps(dag):
    """oBERT (global ranking) reaches the level over the encoder exactly; its OBS update moves
    the kept weights too, so the pruned model lies farther from the dense one than magnitude
    pruning's at the same sparsity (relative distance of compression-aware SFW, Fig. 1)."""
    repo, _, _ = dag
    rows = {(r["method"], r["compressor"]): r for r in summary_rows(repo)
            if r["level"] == "0.5" and r["finetune"] == "False"}
    for method in ("Adam", "CrAM+-Multi"):
        obert, magnitude = rows[(method, "obert")], rows[(method, "uniform_magnitude")]
        assert float(obert["sparsity_prunable"]) == pytest.approx(0.5, abs=1e-4)
        assert float(obert["relative_distance"]) > float(magnitude["relative_distance"])


def test_sparsity_over_the_encoder_is_the_level(dag):
    repo, _, _ = dag
    for row in summary_rows(repo):
        assert row["prunable"] == "bert_encoder"
        assert float(row["sparsity_prunable"]) == pytest.approx(float(row["level"]), abs=1e-4)
        if float(row["level"]) > 0:
            assert 0 < float(row["sparsity_total"]) < float(row["level"])  # embeddings, head stay dense


def test_checkpoints_rebuild_without_the_folder_and_embeddings_stayed_frozen(dag):
    import torch
    from safetensors.torch import load_file

    from compressible.checkpoint import load_checkpoint

    repo, cfg, _ = dag
    folder = repo / cfg["archs"][0]["pretrained"]
    pretrained = load_file(folder / "model.safetensors")
    for method in cfg["methods"]:
        model = load_checkpoint(repo / f"results/bert_tiny/checkpoints/bert-{method['label']}-s0.pt")
        state = model.state_dict()
        embeddings = [k for k in state if k.startswith("bert.embeddings.")]
        assert embeddings and all(torch.equal(state[k], pretrained[k]) for k in embeddings)
        moved = [k for k in state if k.startswith("bert.encoder.") and not torch.equal(state[k], pretrained[k])]
        assert moved, f"{method['label']}: the encoder did not train"


def test_tables_and_figures_label_the_metric(dag):
    repo, _, _ = dag
    table = repo / "paper_tables/bert_tiny/bert_uniform_magnitude_nobnt.tex"
    assert "test F1 (\\%)" in table.read_text() or "test F1 (%)" in table.read_text()
    assert not (repo / "paper_tables/bert_tiny/bert_uniform_magnitude_bnt.tex").exists()  # no BNT for BERT
    for ext in ("pdf", "png"):
        assert (repo / f"figures/bert_tiny/accuracy_vs_sparsity_bert_uniform_magnitude.{ext}").stat().st_size > 0


def test_finetuned_rows_keep_the_oneshot_sparsity_and_score_otherwise(dag):
    """CrAM Table 5's "+ fine-tune": the oBERT-pruned model trained with its mask fixed keeps
    exactly the one-shot model's sparsity (no pruned weight comes back) and scores otherwise."""
    repo, cfg, _ = dag
    rows = summary_rows(repo)
    tuned = [r for r in rows if r["finetune"] == "True"]
    assert {r["compressor"] for r in tuned} == {e["operator"] for e in cfg["oneshot"] if "finetune" in e}
    assert {r["method"] for r in tuned} == {m["label"] for m in cfg["methods"]}
    plain = {(r["method"], r["level"], r["metric"]): r for r in rows
             if r["compressor"] == "obert" and r["finetune"] == "False"}
    for row in tuned:
        one_shot = plain[(row["method"], row["level"], row["metric"])]
        for column in ("sparsity_prunable", "sparsity_total", "params_remaining"):
            assert row[column] == one_shot[column], (row["method"], column)
        assert row["dense_value"] == one_shot["dense_value"]
    for method in {r["method"] for r in tuned}:  # the finetune changed the model: its F1 moved
        f1 = [float(r["value"]) for r in tuned if r["method"] == method and r["metric"] == "f1"]
        assert f1 != [float(plain[(method, r["level"], "f1")]["value"]) for r in tuned
                      if r["method"] == method and r["metric"] == "f1"]


def test_the_finetuned_models_are_their_own_table_line(dag):
    repo, cfg, _ = dag
    table = (repo / "paper_tables/bert_tiny/bert_obert_nobnt.tex").read_text()
    for method in cfg["methods"]:
        assert f"{method['label']} + fine-tune" in table
    assert "fine-tune" not in (repo / "paper_tables/bert_tiny/bert_uniform_magnitude_nobnt.tex").read_text()

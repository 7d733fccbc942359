"""The config check remembered per config and code version (compressible.config_memo): a second
check of the same config imports no torch and gives the same config and planning facts; any
other config, a record that cannot be read, a different code digest are checked in full."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from compressible import config_memo, registry
from compressible.config import ConfigError, validate_config
from compressible.runs import Experiment

ROOT = Path(__file__).resolve().parents[1]
TINY = yaml.safe_load((ROOT / "configs" / "tiny.yaml").read_text())

# A fresh interpreter checks the config twice through the memo and reports what it imported.
_PROBE = """
import json, sys
from compressible.config_memo import checked_config
from compressible.runs import Experiment
cfg = checked_config(json.loads(sys.argv[1]), sys.argv[2] or None)  # "": the default places
experiment = Experiment(cfg)
print(json.dumps({"torch": "torch" in sys.modules, "resolved": cfg.resolved,
                  "checkpoints": experiment.checkpoints(), "figures": experiment.figures(),
                  "hashes": [experiment.spec(r).hash() for r in experiment.runs()]}))
"""


def probe(raw: dict, memo: Path | None) -> dict:
    out = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(raw), str(memo or "")], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out)


def test_the_second_check_imports_no_torch_and_plans_the_same(tmp_path):
    first, second = probe(TINY, tmp_path), probe(TINY, tmp_path)
    assert first["torch"] and not second["torch"]  # the first builds every method on a toy model
    assert {k: v for k, v in first.items() if k != "torch"} == {k: v for k, v in second.items() if k != "torch"}
    assert len(list(tmp_path.iterdir())) == 1


def test_the_remembered_config_equals_the_full_check(tmp_path):
    remembered = (config_memo.checked_config(TINY, tmp_path), config_memo.checked_config(TINY, tmp_path))[1]
    full = validate_config(TINY, check_files=False)
    assert remembered == full
    assert Experiment(remembered).checkpoints() == Experiment(full).checkpoints()


def test_an_other_config_is_checked_in_full_even_after_a_valid_one(tmp_path):
    """A CrAM rule between parameters (dense_first_last needs the uniform Top-K) lives in the
    builder; a memo of the valid config must not let the invalid one through."""
    config_memo.checked_config(TINY, tmp_path)
    bad = copy.deepcopy(TINY)
    cram = next(m for m in bad["methods"] if m["name"].startswith("cram"))
    cram["params"].update(topk_scope="global", dense_first_last=True)
    with pytest.raises(ConfigError, match="dense_first_last"):
        config_memo.checked_config(bad, tmp_path)
    assert len(list(tmp_path.iterdir())) == 1  # nothing remembered for the refused config


def test_schema_errors_are_found_without_a_record(tmp_path):
    bad = dict(TINY, seeds="zero")
    with pytest.raises(ConfigError, match="config key 'seeds'"):
        config_memo.checked_config(bad, tmp_path)
    assert not tmp_path.exists() or not list(tmp_path.iterdir())


@pytest.mark.parametrize("text", ["", "{not json", json.dumps({"method": {}}), json.dumps([1, 2]),
                                  json.dumps({"method": [], "compressor": {}})])
def test_an_unreadable_record_is_checked_again_and_replaced(tmp_path, text):
    config_memo.checked_config(TINY, tmp_path)
    (record,) = tmp_path.iterdir()
    record.write_text(text)
    config_memo.checked_config(TINY, tmp_path)
    facts = json.loads(record.read_text())
    assert facts["method"]["sgd"]["uses_prunable"] is False and facts["method"]["sgd"]["params"]["lr"] == 0.1
    assert facts["dataset"]["squad"] == {"task": "question_answering"}
    assert facts["task"]["question_answering"] == {"primary": "f1"}
    assert facts["compressor"]["global_magnitude"] == {"removes_fraction": True}


def test_the_key_changes_with_the_config_and_the_code(monkeypatch):
    resolved = validate_config(TINY, check_files=False).resolved
    other = dict(resolved, seeds=[5])
    key = config_memo.memo_key(resolved)
    assert config_memo.memo_key(other) != key
    monkeypatch.setattr(config_memo, "code_digest", lambda: "0" * 64)
    assert config_memo.memo_key(resolved) != key


def test_the_code_digest_covers_every_source_file():
    package = Path(config_memo.__file__).parent
    sources = [p for p in package.rglob("*.py") if "__pycache__" not in p.parts]
    assert len(sources) > 50 and package / "config_memo.py" in sources
    assert config_memo.code_digest() == config_memo.code_digest()


def test_remembered_facts_name_the_registry_s_attributes():
    with pytest.raises(ValueError, match="other attributes"):
        registry.Registry("method", "compressible.optim", facts=(("uses_prunable", True),)).remember(
            {"sgd": {"uses_prunable": False, "extra": 1}})


_DRY_RUN = """
import sys
from snakemake.cli import args_to_api, parse_args
parser, args = parse_args(["-n", "--cores", "1", "--configfile", "configs/tiny.yaml"])
args_to_api(args, parser)
print("torch imported:", "torch" in sys.modules)
"""


def test_the_snakefile_s_second_parse_imports_no_torch(tmp_path):
    """What the issue asks of the Snakefile: a dry run, rerun or cluster job after the first
    parse reads the remembered check (and data.missing_files, the run paths) without torch,
    in any working directory of the project (here a second copy): the user's cache holds the
    record, keyed by what was checked, and each working directory gets its own copy."""
    from clones import copy_files

    repos = [copy_files(tmp_path / name) for name in ("repo", "other")]
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    outputs = [subprocess.run([sys.executable, "-c", _DRY_RUN], cwd=repo, env=env, capture_output=True, text=True,
                              check=True).stdout for repo in repos]
    assert "torch imported: True" in outputs[0] and "torch imported: False" in outputs[1]
    counts = [out.split("Job stats:")[1].split("\n\n")[0] for out in outputs]
    assert counts[0] == counts[1] and "train" in counts[0]  # the same jobs planned
    records = [list(place.iterdir()) for place in [tmp_path / "cache" / "compressible" / "checked"] +
               [repo / config_memo.WORKFLOW_MEMO for repo in repos]]
    assert [len(r) for r in records] == [1, 1, 1]  # each working directory holds its own copy, for its jobs
    assert len({r[0].read_text() for r in records}) == 1


def test_a_record_that_cannot_be_written_leaves_the_check_done_and_nothing_behind(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    assert config_memo.checked_config(TINY, tmp_path / "file" / "checked") == validate_config(TINY, check_files=False)
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_the_records_live_in_the_working_directory_and_the_user_s_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert config_memo.memo_dirs() == [Path(".snakemake/compressible/checked"),
                                       tmp_path / "xdg" / "compressible" / "checked"]
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config_memo.memo_dirs()[1] == tmp_path / "home" / ".cache" / "compressible" / "checked"


def test_a_cluster_node_without_the_user_s_cache_reads_the_working_directory_s_record(monkeypatch, tmp_path):
    """Cluster jobs share the workflow's folder, not always the submitting user's home."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "submit-host-cache"))
    first = probe(TINY, None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "node-cache"))
    assert first["torch"] and not probe(TINY, None)["torch"]
    assert not (tmp_path / "node-cache").exists()  # read from the working directory alone


def test_a_job_in_a_working_directory_reads_the_record_but_still_checks_the_files(tmp_path, monkeypatch):
    """The jobs' `read_config`: the remembered check, then the disk checks of
    validate_config(check_files=True), with the same message (here: the BERT folder is absent)."""
    from compressible.cli import read_config

    raw = yaml.safe_load((ROOT / "tests" / "configs" / "bert_tiny.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "bert_tiny.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as full:
        validate_config(raw, check_files=True)
    (tmp_path / ".snakemake").mkdir()
    assert read_config("bert_tiny.yaml", check_files=False) == validate_config(raw, check_files=False)
    assert len(list((tmp_path / "cache" / "compressible" / "checked").iterdir())) == 1
    with pytest.raises(ConfigError) as remembered:
        read_config("bert_tiny.yaml")
    assert str(remembered.value) == str(full.value) and "resources/bert_tiny" in str(full.value)

"""The train rule's decisions (``Experiment`` in runs.py): which checkpoint is current, when a
train job takes the prepared data as input, and the stale and pull warnings, on a checkpoint and
provenance JSON written by a real training run of the tiny config."""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from compressible.config import read_yaml, validate_config
from compressible.data import save_prepared
from compressible.runs import Experiment, Run
from compressible.training.loop import train_run

from conftest import synthetic_splits

TINY = read_yaml(Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml")
RUN = Run("resnet20", "SGD", 0)


def experiment(**training) -> Experiment:
    raw = copy.deepcopy(TINY)
    raw["training"].update(training)
    return Experiment(validate_config(raw))


def weights(exp: Experiment) -> Path:
    return Path(exp.checkpoint(RUN.arch, RUN.method, RUN.seed))


def info(exp: Experiment) -> Path:
    return Path(exp.checkpoint_info(RUN.arch, RUN.method, RUN.seed))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A folder holding the tiny experiment's SGD seed-0 checkpoint and JSON, trained for real
    (on a few synthetic images under the prepared data's name: the decisions read no pixel)."""
    root, exp = tmp_path_factory.mktemp("trained"), experiment()
    save_prepared(synthetic_splits(n_train=128, n_test=32), root / exp.data)
    train_run(exp.spec(RUN), root / exp.data, root / weights(exp))
    return root


@pytest.fixture
def workdir(trained, tmp_path, monkeypatch) -> Path:
    """A working directory with the trained checkpoint and without the prepared data."""
    exp = experiment()
    shutil.copytree(trained / exp.results, tmp_path / exp.results)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def prepare_data(trained: Path, exp: Experiment) -> None:
    Path(exp.data).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(trained / exp.data, exp.data)


def test_a_checkpoint_trained_for_the_current_hash_is_current_and_needs_no_data(workdir):
    exp = experiment()
    assert exp.checkpoint_is_current(RUN)
    assert not exp.train_needs_data(RUN, recorded=False, forced=False)
    assert exp.stale_warning(RUN, recorded=False) is None


def test_a_current_checkpoint_keeps_its_data_where_that_changes_nothing(workdir, trained):
    exp = experiment()
    assert exp.train_needs_data(RUN, recorded=True, forced=False)  # Snakemake recorded its job
    assert exp.train_needs_data(RUN, recorded=False, forced=True)  # --forcerun and friends
    prepare_data(trained, exp)
    assert exp.train_needs_data(RUN, recorded=False, forced=False)  # an existing ancient input


def test_settings_outside_the_hash_leave_the_checkpoint_current(workdir):
    assert experiment(eval_batch_size=100, threads=2).checkpoint_is_current(RUN)


def test_a_missing_checkpoint_is_not_current_and_needs_its_data(workdir):
    exp = experiment()
    assert not exp.checkpoint_is_current(Run("resnet20", "SGD", 1))
    assert exp.train_needs_data(Run("resnet20", "SGD", 1), recorded=False, forced=False)
    assert exp.stale_warning(Run("resnet20", "SGD", 1), recorded=False) is None  # nothing stale


@pytest.mark.parametrize("damage", ["empty weights", "no json", "corrupt json", "json without hash"])
def test_a_damaged_checkpoint_is_not_current(workdir, damage):
    exp = experiment()
    if damage == "empty weights":
        weights(exp).write_bytes(b"")
    elif damage == "no json":
        info(exp).unlink()
    elif damage == "corrupt json":
        info(exp).write_text(info(exp).read_text()[:40])
    else:
        payload = json.loads(info(exp).read_text())
        del payload["config"]["hash"]
        info(exp).write_text(json.dumps(payload))
    assert not exp.checkpoint_is_current(RUN)
    assert exp.train_needs_data(RUN, recorded=False, forced=False)


def test_a_checkpoint_of_other_settings_is_stale(workdir, trained):
    other = experiment(batch_size=32)  # hashed: another run
    assert not other.checkpoint_is_current(RUN)
    assert other.train_needs_data(RUN, recorded=False, forced=False)
    assert other.stale_warning(RUN, recorded=False) is None  # its data comes first: it retrains anyway
    prepare_data(trained, other)
    message = other.stale_warning(RUN, recorded=False)
    assert str(weights(other)) in message and other.spec(RUN).hash() in message
    assert "--forcerun" in message
    assert other.stale_warning(RUN, recorded=True) is None  # Snakemake's params trigger reruns it


def test_the_pull_hint_names_missing_checkpoints_of_a_published_experiment(workdir):
    exp = experiment()
    assert exp.pull_hint(["tiny"]) == ("3 checkpoint(s) of 'tiny' are missing but published in dvc.lock: "
                                       "`dvc pull train@tiny` restores them instead of training them.")
    assert exp.pull_hint(["default"]) is None
    for run in exp.runs():
        Path(exp.checkpoint(run.arch, run.method, run.seed)).write_bytes(b"x")
    assert exp.pull_hint(["tiny"]) is None

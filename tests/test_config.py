"""Config validation: bad input stops at the boundary with the key and the allowed values."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from compressible.config import ConfigError, load_config, run_spec, spec_hash, validate_config

CONFIGS = sorted(Path(__file__).resolve().parents[1].joinpath("configs").glob("*.yaml"))


@pytest.fixture
def tiny() -> dict:
    return yaml.safe_load(Path(__file__).resolve().parents[1].joinpath("configs/tiny.yaml").read_text())


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_is_valid(path):
    cfg = load_config(path)
    assert cfg["bnt"]["trials"] >= 0 and cfg["training"]["schedule"] in {"cosine", "constant", "step"}


def test_defaults_are_filled(tiny):
    cfg = validate_config(tiny)
    assert cfg["training"]["warmup_epochs"] == 0 and cfg["training"]["augment"] is True


@pytest.mark.parametrize("mutate, fragments", [
    (lambda c: c["methods"][0].update(name="adam_cram"), ["methods.0.name", "cram_plus_multi", "sgd"]),
    (lambda c: c["archs"][0].update(name="resnet21"), ["archs.0.name", "resnet20"]),
    (lambda c: c["dataset"].update(name="imagenet22k"), ["dataset.name", "mnist_embedded"]),
    (lambda c: c["oneshot"][0].update(levels=[0.5, 1.0]), ["oneshot.0.levels.1", "[0, 1)"]),
    (lambda c: c["oneshot"][0].update(operator="magnitude"), ["oneshot.0.operator", "global_magnitude"]),
    (lambda c: c["methods"][1]["params"].update(rhoo=0.1), ["methods.1.params", "rhoo", "'rho'"]),
    (lambda c: c.update(epochs=3), ["epochs"]),
    (lambda c: c["training"].update(batch_size=0), ["training.batch_size"]),
    (lambda c: c.update(prunable="convs"), ["prunable", "weights_inner"]),
    (lambda c: c["methods"].append(copy.deepcopy(c["methods"][0])), ["labels must be unique"]),
])
def test_bad_config_names_key_and_allowed_values(tiny, mutate, fragments):
    mutate(tiny)
    with pytest.raises(ConfigError) as err:
        validate_config(tiny)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_run_hash_changes_only_with_the_run(tiny):
    cfg = validate_config(tiny)
    sgd0 = spec_hash(run_spec(cfg, "resnet20", "SGD", 0))
    assert sgd0 == spec_hash(run_spec(validate_config(tiny), "resnet20", "SGD", 0))
    assert sgd0 != spec_hash(run_spec(cfg, "resnet20", "SGD", 1))
    cfg["methods"][1]["params"]["rho"] = 0.5  # CrAM's change leaves SGD's run alone
    assert sgd0 == spec_hash(run_spec(cfg, "resnet20", "SGD", 0))


def test_cli_rejects_a_bad_config_with_exit_code_2(tiny, tmp_path):
    import subprocess
    import sys

    tiny["oneshot"][0]["levels"] = [1.5]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(tiny))
    proc = subprocess.run([sys.executable, "-m", "compressible", "check-config", "--config", str(tmp_path / "bad.yaml")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "oneshot.0.levels.0" in proc.stderr


def test_every_config_is_tracked_by_dvc_under_its_own_name():
    stages = yaml.safe_load(Path(__file__).resolve().parents[1].joinpath("dvc.yaml").read_text())["stages"]
    tracked = stages["train"]["foreach"]
    for path in CONFIGS:
        assert load_config(path)["experiment"] == path.stem
        assert path.stem in tracked

"""Config validation: bad input stops at the boundary with the key and the allowed values."""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import yaml

from compressible import config as config_module
from compressible.config import ConfigError, load_config, schema, validate_config
from compressible.runs import Experiment, Run

CONFIGS = sorted(Path(__file__).resolve().parents[1].joinpath("configs").glob("*.yaml"))


@pytest.fixture
def tiny() -> dict:
    return yaml.safe_load(Path(__file__).resolve().parents[1].joinpath("configs/tiny.yaml").read_text())


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_is_valid(path):
    cfg = load_config(path)
    assert cfg.bnt.trials >= 0 and cfg.training.schedule in {"cosine", "constant", "step", "sfw_dynamic"}


def test_defaults_are_filled(tiny):
    cfg = validate_config(tiny)
    assert cfg.training.warmup_epochs == 0 and cfg.training.augment is True
    assert cfg.training.threads == 1 and cfg.prunable == "weights" and cfg.oneshot[0].prunable is None


SECTIONS = [("", "Config"), ("archs", "Arch"), ("methods", "Method"), ("training", "Training"),
            ("oneshot", "OneShot"), ("bnt", "BNT"), ("report", "Report")]


@pytest.mark.parametrize("section, cls", SECTIONS + [("oneshot.finetune", "Finetune")])
def test_typed_config_names_exactly_the_schema_keys(section, cls):
    node = schema()
    for part in filter(None, section.split(".")):
        node = node["properties"][part]
        node = node.get("items", node)
    fields = {f.name for f in dataclasses.fields(getattr(config_module, cls))}
    assert fields - {"resolved"} == set(node["properties"])


# Optional keys whose absence is the setting (no key written into the resolved config, so every
# config without them keeps its resolved bytes): a oneshot entry's finetune (None: no finetune).
ABSENT_IS_NONE = {"oneshot": ["finetune"]}


def test_defaults_live_in_the_schema_only(tiny):
    """Every optional key of a typed section has its default in the schema."""
    def optional_without_default(node):
        props = node.get("properties", {})
        return [k for k, v in props.items() if k not in node.get("required", []) and "default" not in v]
    top = schema()
    for section, _ in SECTIONS[1:]:
        node = top["properties"][section]
        assert optional_without_default(node.get("items", node)) == ABSENT_IS_NONE.get(section, []), section
    cfg = validate_config(tiny)
    assert cfg.oneshot[0].finetune is None and "finetune" not in cfg.resolved["oneshot"][0]


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
    (lambda c: c["methods"].append(copy.deepcopy(c["methods"][0])), ["methods (labels)", "unique"]),
    (lambda c: c["oneshot"].append(copy.deepcopy(c["oneshot"][0])), ["oneshot (operators)", "unique"]),
    (lambda c: c.update(report={"published": "cram"}), ["report", "published"]),
])
def test_bad_config_names_key_and_allowed_values(tiny, mutate, fragments):
    mutate(tiny)
    with pytest.raises(ConfigError) as err:
        validate_config(tiny)
    for fragment in fragments:
        assert fragment in str(err.value)


def run_hash(raw: dict, method: str = "SGD", seed: int = 0) -> str:
    experiment = Experiment(validate_config(raw))
    return experiment.spec(Run("resnet20", method, seed)).hash()


def test_run_hash_changes_only_with_the_run(tiny):
    sgd0, cram0 = run_hash(tiny), run_hash(tiny, "CrAM+-Multi")
    assert sgd0 == run_hash(copy.deepcopy(tiny))
    assert sgd0 != run_hash(tiny, seed=1)
    tiny["methods"][1]["params"]["rho"] = 0.5  # CrAM's change leaves SGD's run alone
    assert sgd0 == run_hash(tiny) and cram0 != run_hash(tiny, "CrAM+-Multi")


@pytest.mark.parametrize("mutate", [
    lambda c: c["training"].update(eval_batch_size=100),
    lambda c: c["training"].update(threads=2),
    lambda c: c["bnt"].update(trials=5),
    lambda c: c["oneshot"][0].update(levels=[0.3]),
    lambda c: c.update(prunable="weights_inner"),  # SGD reads no prunable set
    lambda c: c["dataset"].update(root="elsewhere"),
])
def test_settings_outside_training_never_retrain_sgd(tiny, mutate):
    before = run_hash(tiny)
    mutate(tiny)
    assert run_hash(tiny) == before


@pytest.mark.parametrize("mutate", [
    lambda c: c["training"].update(epochs=2),
    lambda c: c["training"].update(batch_size=32),
    lambda c: c["dataset"].update(train_subset=256),
    lambda c: c["methods"][0]["params"].update(lr=0.1),
    lambda c: c["archs"][0].update(width=8),
])
def test_training_settings_change_the_hash(tiny, mutate):
    before = run_hash(tiny)
    mutate(tiny)
    assert run_hash(tiny) != before


def test_prunable_set_changes_a_cram_run(tiny):
    before = run_hash(tiny, "CrAM+-Multi")
    tiny["prunable"] = "weights_inner"
    assert run_hash(tiny, "CrAM+-Multi") != before


def test_cli_rejects_a_bad_config_with_exit_code_2(tiny, tmp_path):
    import subprocess
    import sys

    tiny["oneshot"][0]["levels"] = [1.5]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(tiny))
    proc = subprocess.run([sys.executable, "-m", "compressible", "check-config", "--config", str(tmp_path / "bad.yaml")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "oneshot.0.levels.0" in proc.stderr


def test_every_config_is_named_after_its_file_and_dvc_tracks_only_configs():
    stages = yaml.safe_load(Path(__file__).resolve().parents[1].joinpath("dvc.yaml").read_text())["stages"]
    for path in CONFIGS:
        assert load_config(path).experiment == path.stem
    for experiment, item in stages["train"]["foreach"].items():  # the stage's config defines it
        assert load_config(item["config"]).experiment == experiment

"""Every bad config is refused at parse time, before any job runs, in one message format that
names the key, the bad value or what is wrong, and what is allowed. One mutation of
configs/tiny.yaml per row (methods.0 is SGD, methods.1 is CrAM+-Multi)."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from compressible.config import ConfigError, load_config, read_yaml, validate_config

TINY = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml").read_text())
SFW = {"label": "SFW", "name": "sfw", "params": {"lr": 1.0, "constraint": "k_sparse", "k": "5%"}}
NUC = {"label": "NUC", "name": "nuclear_prox", "params": {}}
NM = {"label": "NM", "name": "cram_plus_nm", "params": {}}
QUANT = {"label": "Q", "name": "cram_plus_quant", "params": {}}
CSAM = {"label": "CS", "name": "c_sam", "params": {}}


def sgd(**params):
    return lambda c: c["methods"][0]["params"].update(params)


def cram(**params):
    return lambda c: c["methods"][1]["params"].update(params)


def with_method(method, **params):
    def mutate(c):
        c["methods"].append(copy.deepcopy(method))
        c["methods"][-1]["params"].update(params)
    return mutate


def at(section, **values):
    return lambda c: c.setdefault(section, {}).update(values)


def entry(**values):
    return lambda c: c["oneshot"][0].update(values)


BAD = [
    # method parameters: ranges and types
    ("lr negative", sgd(lr=-0.05), "methods.0.params.lr"),
    ("lr zero", sgd(lr=0), "methods.0.params.lr"),
    ("lr a word", sgd(lr="fast"), "methods.0.params.lr"),
    ("momentum 1.5", sgd(momentum=1.5), "methods.0.params.momentum"),
    ("momentum 1", sgd(momentum=1.0), "methods.0.params.momentum"),
    ("momentum negative", sgd(momentum=-0.1), "methods.0.params.momentum"),
    ("weight decay negative", sgd(weight_decay=-1e-4), "methods.0.params.weight_decay"),
    ("nesterov a string", sgd(nesterov="yes"), "methods.0.params.nesterov"),
    ("unknown sgd key", sgd(rho=0.1), "methods.0.params"),
    ("rho negative", cram(rho=-0.05), "methods.1.params.rho"),
    ("sparsity above 1", cram(sparsities=[0.5, 1.5]), "methods.1.params.sparsities"),
    ("sparsity 1", cram(sparsities=[1.0]), "methods.1.params.sparsities"),
    ("sparsity negative", cram(sparsities=[-0.1]), "methods.1.params.sparsities"),
    ("sparsities empty", cram(sparsities=[]), "methods.1.params.sparsities"),
    ("sparsities a number", cram(sparsities=0.5), "methods.1.params.sparsities"),
    ("topk scope typo", cram(topk_scope="globl"), "methods.1.params.topk_scope"),
    ("mask_every 0", cram(mask_every=0), "methods.1.params.mask_every"),
    ("mask_every fractional", cram(mask_every=1.5), "methods.1.params.mask_every"),
    ("sparse_grad a string", cram(sparse_grad="true"), "methods.1.params.sparse_grad"),
    ("dense ends with global scope", cram(dense_first_last=True), "methods.1.params.dense_first_last': dense"),
    ("unknown cram key", cram(sparsity=0.5), "methods.1.params"),
    ("nm pattern reversed", with_method(NM, patterns=["4:2"]), "methods.2.params.patterns"),
    ("nm pattern unquoted", with_method(NM, patterns=[124]), "methods.2.params.patterns"),
    ("nm pattern N = M", with_method(NM, patterns=["4:4"]), "methods.2.params.patterns"),
    ("nm patterns empty", with_method(NM, patterns=[]), "methods.2.params.patterns"),
    ("bits 0", with_method(QUANT, bits=0), "methods.2.params.bits"),
    ("bits 32", with_method(QUANT, bits=32), "methods.2.params.bits"),
    ("bits fractional", with_method(QUANT, bits=4.5), "methods.2.params.bits"),
    ("c_sam normalize a number", with_method(CSAM, normalize=1), "methods.2.params.normalize"),
    ("sfw constraint typo", with_method(SFW, constraint="k_sparce"), "methods.2.params.constraint"),
    ("sfw k fractional", with_method(SFW, k=1.5), "methods.2.params.k"),
    ("sfw k zero", with_method(SFW, k=0), "methods.2.params.k"),
    ("sfw k a bare fraction", with_method(SFW, k=0.05), "methods.2.params.k"),
    ("sfw k percent above 100", with_method(SFW, k="150%"), "methods.2.params.k"),
    ("sfw k_min zero", with_method(SFW, k_min=0), "methods.2.params.k_min"),
    ("sfw rescale typo", with_method(SFW, rescale="gradiant"), "methods.2.params.rescale"),
    ("sfw radius mode typo", with_method(SFW, radius_mode="init"), "methods.2.params.radius_mode"),
    ("sfw momentum style typo", with_method(SFW, momentum_style="nesterov"), "methods.2.params.momentum_style"),
    ("sfw constrain typo", with_method(SFW, constrain="some"), "methods.2.params.constrain"),
    ("sfw weight decay", with_method(SFW, weight_decay=5e-4),
     "methods.2.params.weight_decay': SFW takes no weight decay"),
    ("sfw tau zero", with_method(SFW, tau=0), "methods.2.params.tau"),
    ("sfw init typo", with_method(SFW, init="gradinit"), "methods.2.params.init"),
    ("sfw both delays", with_method(SFW, delay_k_steps=5, delay_k_epochs=1, steps_per_epoch=8),
     "methods.2.params.delay_k_epochs': give delay_k_steps or delay_k_epochs, not both"),
    ("sfw delay epochs alone", with_method(SFW, delay_k_epochs=1),
     "methods.2.params.delay_k_epochs': delay_k_epochs needs steps_per_epoch"),
    ("sfw init lr negative", with_method(SFW, init_lr=-1e-3), "methods.2.params.init_lr"),
    ("sfw constraint scope typo", with_method(SFW, constraint_scope="model"), "methods.2.params.constraint_scope"),
    ("sfw global spectral", with_method(SFW, constraint="spectral_k_support", constraint_scope="global"),
     "no global form"),
    ("sfw global with sfw_init", with_method(SFW, constraint_scope="global", init="sfw_init"),
     "methods.2.params.init': init 'sfw_init' learns one scale per tensor"),
    ("sfw delay restore typo", with_method(SFW, delay_k_restore="project"), "methods.2.params.delay_k_restore"),
    ("sfw init iterations zero", with_method(SFW, init_iterations=0), "methods.2.params.init_iterations"),
    ("sfw init grad clip negative", with_method(SFW, init_grad_clip=-1.0), "methods.2.params.init_grad_clip"),
    ("sfw init grad clip a word", with_method(SFW, init_grad_clip="off"), "methods.2.params.init_grad_clip"),
    ("sfw init bias floor negative", with_method(SFW, init_bias_min_scale=-0.1),
     "methods.2.params.init_bias_min_scale"),
    ("sfw init min scale zero", with_method(SFW, init_min_scale=0), "methods.2.params.init_min_scale"),
    ("nuclear negative", with_method(NUC, nuclear=-1.0), "methods.2.params.nuclear"),
    ("nuclear layers typo", with_method(NUC, layers="all"), "methods.2.params.layers"),
    # names against their registries
    ("unknown method", lambda c: c["methods"][0].update(name="lamb"), "methods.0.name"),
    ("unknown arch", lambda c: c["archs"][0].update(name="resnet21"), "archs.0.name"),
    ("unknown dataset", at("dataset", name="imagenet22k"), "dataset.name"),
    ("unknown prunable set", lambda c: c.update(prunable="convs"), "prunable"),
    ("unknown operator", entry(operator="magnitude"), "oneshot.0.operator"),
    ("unknown entry prunable set", entry(prunable="convs"), "oneshot.0.prunable"),
    ("unknown schedule", at("training", schedule="exponential"), "training.schedule"),
    # one-shot levels
    ("sparsity level 1", entry(levels=[0.5, 1.0]), "oneshot.0.levels.1"),
    ("sparsity level negative", entry(levels=[-0.5]), "oneshot.0.levels.0"),
    ("sparsity level a word", entry(levels=["half"]), "oneshot.0.levels.0"),
    ("no levels", entry(levels=[]), "oneshot.0.levels"),
    ("nm level reversed", entry(operator="nm", levels=["4:2"]), "oneshot.0.levels.0"),
    ("quantize level 1 bit", entry(operator="quantize", levels=[1]), "oneshot.0.levels.0"),
    ("energy level 0", entry(operator="lowrank_energy", levels=[0.0]), "oneshot.0.levels.0"),
    ("duplicate operator", lambda c: c["oneshot"].append(copy.deepcopy(c["oneshot"][0])), "oneshot (operators)"),
    # the sparse finetune after pruning (CrAM App. D): method masked's parameters, whole epochs
    ("finetune epochs negative", entry(finetune={"epochs": -1}), "oneshot.0.finetune.epochs"),
    ("finetune epochs zero", entry(finetune={"epochs": 0}), "oneshot.0.finetune.epochs"),
    ("finetune without epochs", entry(finetune={"params": {}}), "oneshot.0.finetune"),
    ("finetune unknown key", entry(finetune={"epochs": 1, "patience": 2}), "oneshot.0.finetune"),
    ("finetune unknown param", entry(finetune={"epochs": 1, "params": {"rho": 0.1}}), "oneshot.0.finetune.params"),
    ("finetune lr negative", entry(finetune={"epochs": 1, "params": {"lr": -1e-3}}), "oneshot.0.finetune.params.lr"),
    ("finetune unknown base", entry(finetune={"epochs": 1, "params": {"base": "lion"}}), "oneshot.0.finetune.params"),
    ("finetune label smoothing 1", entry(finetune={"epochs": 1, "label_smoothing": 1.0}),
     "oneshot.0.finetune.label_smoothing"),
    ("finetune after quantization", entry(operator="quantize", levels=[4], finetune={"epochs": 1}),
     "oneshot.0.finetune"),
    # uniqueness, seeds, structure
    ("duplicate method label", lambda c: c["methods"].append(copy.deepcopy(c["methods"][0])), "methods (labels)"),
    ("duplicate seeds", lambda c: c.update(seeds=[0, 0]), "seeds"),
    ("negative seed", lambda c: c.update(seeds=[-1]), "seeds.0"),
    ("no seeds", lambda c: c.update(seeds=[]), "seeds"),
    ("duplicate arch", lambda c: c["archs"].append(copy.deepcopy(c["archs"][0])), "archs"),
    ("label with a slash", lambda c: c["methods"][0].update(label="SGD/2"), "methods.0.label"),
    ("experiment with a space", lambda c: c.update(experiment="my run"), "experiment"),
    ("unknown top-level key", lambda c: c.update(epochs=3), "epochs"),
    ("dead report key", lambda c: c.update(report={"figure_operator": "nm"}), "figure_operator"),
    ("no methods", lambda c: c.update(methods=[]), "methods"),
    # training and sizes
    ("zero epochs", at("training", epochs=0), "training.epochs"),
    ("method epochs zero", lambda c: c["methods"][0].update(epochs=0), "methods.0.epochs"),
    ("zero batch size", at("training", batch_size=0), "training.batch_size"),
    ("batch larger than the split", at("training", batch_size=1024), "training.batch_size"),
    ("warm-up as long as training", at("training", warmup_epochs=1), "training.warmup_epochs"),
    ("negative warm-up", at("training", warmup_epochs=-1), "training.warmup_epochs"),
    ("milestone beyond training", at("training", milestones=[0.5, 1.5]), "training.milestones"),
    ("threads zero", at("training", threads=0), "training.threads"),
    ("train subset beyond the dataset", at("dataset", train_subset=5000), "dataset.train_subset"),
    ("test subset zero", at("dataset", test_subset=0), "dataset.test_subset"),
    ("dataset key of another kind", at("dataset", image_size=224), "dataset.image_size"),
    ("mean without std", at("dataset", mean=[0.5]), "dataset.mean"),
    ("bnt samples beyond the split", at("bnt", samples=1000), "bnt.samples"),
    ("bnt batch beyond the split", at("bnt", batch_size=1000), "bnt.batch_size"),
    ("bnt trials negative", at("bnt", trials=-1), "bnt.trials"),
    ("bnt momentum zero", at("bnt", momentum=0), "bnt.momentum"),
    ("bnt batches zero", at("bnt", batches=0), "bnt.batches"),
]


def test_the_table_is_large_enough():
    assert len(BAD) >= 70 and len({name for name, _, _ in BAD}) == len(BAD)


@pytest.mark.parametrize("name, mutate, key", BAD, ids=[row[0] for row in BAD])
def test_bad_config_refused_at_parse_time(name, mutate, key):
    cfg = copy.deepcopy(TINY)
    mutate(cfg)
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    message = str(err.value)
    assert message.startswith("config key") and key in message, message  # one format, the key named


def test_tiny_itself_is_valid():
    validate_config(copy.deepcopy(TINY))


def test_yaml_error_names_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("experiment: x\nmethods:\n  - {label: SGD, name: sgd\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml:\d+:\d+: not valid YAML"):
        load_config(path)


@pytest.mark.parametrize("text, key, line", [
    ("experiment: x\nseeds: [0]\ndescription: d\nseeds: [1]\n", "seeds", 4),
    ("training:\n  epochs: 1\n  batch_size: 8\n  epochs: 2\n", "epochs", 4),
    ("methods:\n  - label: A\n    params: {lr: 0.1, lr: 0.2}\n", "lr", 3),
])
def test_a_key_given_twice_is_refused_with_its_line(tmp_path, text, key, line):
    """PyYAML alone keeps the last value silently; the config would run with it."""
    path = tmp_path / "twice.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"twice\.yaml:{line}:\d+: not valid YAML: duplicate key '{key}'"):
        load_config(path)


def test_a_merge_key_may_be_overridden(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text("base: &b {lr: 0.1, momentum: 0.9}\nparams:\n  <<: *b\n  lr: 0.2\n")
    assert read_yaml(path)["params"] == {"lr": 0.2, "momentum": 0.9}


def test_missing_config_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="no such config file") as err:
        load_config(tmp_path / "absent.yaml")
    assert "\n" not in str(err.value)


def snakemake_dry_run(configfile: Path):
    import subprocess
    import sys

    snakemake = Path(sys.executable).with_name("snakemake")
    return subprocess.run([str(snakemake), "-n", "--configfile", str(configfile)],
                          cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True)


def test_snakemake_dry_run_refuses_a_bad_config_in_the_projects_format(tmp_path):
    cfg = copy.deepcopy(TINY)
    cfg["methods"][0]["params"]["momentum"] = 1.5
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake_dry_run(tmp_path / "bad.yaml")
    assert proc.returncode != 0
    assert "invalid config: config key 'methods.0.params.momentum': 1.5 not allowed" in proc.stdout + proc.stderr


def test_snakemake_configfile_with_a_key_given_twice_is_refused(tmp_path):
    """Snakemake reads --configfile itself (last value wins); the workflow reads it again, strictly."""
    text = (Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml").read_text() + "seeds: [7]\n"
    (tmp_path / "twice.yaml").write_text(text)
    proc = snakemake_dry_run(tmp_path / "twice.yaml")
    assert proc.returncode != 0
    line = text.count("\n")
    assert f"twice.yaml:{line}:1: not valid YAML: duplicate key 'seeds'" in proc.stdout + proc.stderr


@pytest.mark.parametrize("params, fragment", [
    ({"samples": 0}, "obert param 'samples': 0 not allowed; allowed: a positive integer"),
    ({"block": 50}, "obert has no param 'block'"),
    ({"recomputations": 2.5}, "obert param 'recomputations': 2.5 not allowed"),
])
def test_obert_params_are_checked_with_their_key(params, fragment):
    from compressible.config import ConfigError, validate_config

    raw = copy.deepcopy(TINY)
    raw["oneshot"].append({"operator": "obert", "levels": [0.5], "params": params})
    with pytest.raises(ConfigError, match=rf"oneshot\.1\.params': {fragment}"):
        validate_config(raw)


def test_a_compressor_without_settings_refuses_params():
    from compressible.config import ConfigError, validate_config

    raw = copy.deepcopy(TINY)
    raw["oneshot"][0]["params"] = {"samples": 8}
    with pytest.raises(ConfigError, match=r"oneshot\.0\.params': compressor 'global_magnitude' takes no params"):
        validate_config(raw)

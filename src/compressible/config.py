"""The experiment config: load YAML, check it against the schema, fill defaults, check names,
and expose it typed.

Everything is rejected at the boundary, before any job runs, with the offending key and the
allowed values in the message (a typo in a method name must not cost a training run). Defaults
live in the schema only (``schemas/config.schema.yaml``); the dataclasses below name its keys
and a test keeps the two equal. ``dataset`` and a method's ``params`` stay mappings: their keys
depend on the dataset and on the method, and are checked against the registered builder.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Optional

import jsonschema
import yaml

from . import registry, strict_yaml


class ConfigError(ValueError):
    """A config that cannot be run; the message names the key and what is allowed."""


@dataclass(frozen=True)
class Arch:
    name: str
    width: Optional[int]
    pretrained: Optional[str]  # a local state-dict file loaded before training


@dataclass(frozen=True)
class Method:
    label: str
    name: str
    params: dict
    epochs: Optional[int]  # overrides training.epochs (the papers train dense baselines longer)
    family: Optional[str] = None  # the sweep it belongs to (None: its own); see report/selection.py
    label_smoothing: Optional[float] = None  # overrides training.label_smoothing (CrAM App. D: per optimizer)


@dataclass(frozen=True)
class Training:
    epochs: int
    batch_size: int
    eval_batch_size: int
    warmup_epochs: float
    schedule: str
    schedule_unit: str  # the factor moves every step, or once per epoch
    milestones: list
    augment: bool
    threads: int
    gpus: int  # the train and oneshot rules' gpu resource (SLURM requests it)
    gpus_per_run: int
    sync_bn: bool
    device: str  # auto | cpu | cuda | cuda:N, resolved when the job starts (device.py)
    precision: str  # fp32 | bf16 (autocast)
    compile: bool  # torch.compile the trained model
    jobs_per_gpu: int  # jobs sharing one GPU of the workstation's --resources gpu=N
    tf32: bool = True  # TF32 tensor cores for fp32 convolutions and matmuls on CUDA (device.py)
    schedule_loss: str = "epoch_mean"  # or last_batch: the epoch loss sfw_dynamic compares
    numerics: str = "fast"  # or portable: the same CPU bytes on every x86-64 machine (numerics.py)
    label_smoothing: float = 0.0  # of the training loss's cross-entropies (CrAM App. D for BERT)
    freeze: tuple = ()  # model parts not trained, e.g. BERT's embeddings (CrAM App. D)


@dataclass(frozen=True)
class Finetune:
    """The sparse finetune after one-shot pruning (CrAM Sec. 4.2, App. D): method ``masked``."""

    epochs: int
    params: dict  # method masked's
    label_smoothing: Optional[float]  # None: the run's


@dataclass(frozen=True)
class OneShot:
    operator: str
    levels: list
    prunable: Optional[str]  # None: the experiment's prunable set
    params: dict  # the compressor's own settings (oBERT's gradients, block size, ...)
    finetune: Optional[Finetune] = None  # None: the pruned models are measured as pruned only

    def compressor(self):
        return registry.COMPRESSORS.get(self.operator).configured(**self.params)


@dataclass(frozen=True)
class BNT:
    trials: int
    samples: int
    batch_size: int
    batches: int
    momentum: Optional[float]


@dataclass(frozen=True)
class Report:
    table_levels: list


@dataclass(frozen=True)
class Config:
    """One validated experiment; ``resolved`` is the defaults-filled mapping saved with results."""

    experiment: str
    description: str
    dataset: dict
    archs: list[Arch]
    methods: list[Method]
    seeds: list[int]
    training: Training
    prunable: str
    oneshot: list[OneShot]
    bnt: BNT
    report: Report
    reproduces: list[str]  # published tables and claims this experiment is compared with
    resolved: dict

    def arch(self, name: str) -> Arch:
        return next(a for a in self.archs if a.name == name)

    def method(self, label: str) -> Method:
        return next(m for m in self.methods if m.label == label)

    def entry(self, operator: str) -> OneShot:
        return next(e for e in self.oneshot if e.operator == operator)


def schema() -> dict:
    text = resources.files("compressible.schemas").joinpath("config.schema.yaml").read_text()
    return strict_yaml.load(text)


def load_config(path: str | Path, check_files: bool = True) -> Config:
    """Read, validate and complete the experiment config at ``path`` (``check_files``: see
    :func:`validate_config`)."""
    return validate_config(read_yaml(path), check_files)


def read_yaml(path: str | Path) -> dict:
    """The mapping in a YAML file; a missing file, a syntax error or a key given twice is one
    line naming it (and the line)."""
    try:
        with open(path) as handle:
            raw = strict_yaml.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except yaml.YAMLError as err:
        raise ConfigError(strict_yaml.describe(err, str(path))) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the config must be a YAML mapping")
    return raw


def validate_config(raw: dict, check_files: bool = True) -> Config:
    """Schema check, defaults, registry names and method/operator parameters, then typed.

    ``check_files=False`` does not require a streamed dataset's folders to exist (a dry run on a
    machine without the data); its preparation still stops on them."""
    cfg = resolve(raw)
    _check_names(cfg, check_files)
    return typed(cfg)


def check_config_files(cfg: dict) -> None:
    """What ``validate_config(check_files=True)`` adds to a resolved config's check: the
    dataset's folders and files and a model folder must be there."""
    _check_dataset(cfg, check_files=True)
    _check_task(cfg, check_files=True)


def resolve(raw: dict) -> dict:
    """The schema check and the defaults filled in (a copy): the part of the check that needs
    no registry, hence no torch."""
    cfg, rules = copy.deepcopy(raw), schema()
    errors = sorted(jsonschema.Draft202012Validator(rules).iter_errors(cfg), key=str)
    if errors:
        raise ConfigError("; ".join(_describe(e) for e in errors))
    _fill_defaults(cfg, rules)
    return cfg


def typed(cfg: dict) -> Config:
    """The dataclass view of a validated, defaults-filled config mapping."""
    return Config(
        experiment=cfg["experiment"], description=cfg["description"], dataset=cfg["dataset"],
        archs=[Arch(**a) for a in cfg["archs"]], methods=[Method(**m) for m in cfg["methods"]],
        seeds=list(cfg["seeds"]), training=Training(**training_of(cfg)), prunable=cfg["prunable"],
        oneshot=[oneshot_of(e) for e in cfg["oneshot"]], bnt=BNT(**cfg["bnt"]),
        report=Report(**cfg["report"]), reproduces=list(cfg["reproduces"]), resolved=cfg)


def oneshot_of(entry: dict) -> OneShot:
    finetune = entry.get("finetune")
    return OneShot(**dict(entry, finetune=Finetune(**finetune) if finetune else None))


def training_of(cfg: dict) -> dict:
    """The ``training`` mapping with ``freeze`` as a tuple (the dataclass is hashable)."""
    return dict(cfg["training"], freeze=tuple(cfg["training"]["freeze"]))


def _describe(error: jsonschema.ValidationError) -> str:
    key = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    return f"config key '{key}': {error.message}"


def _fill_defaults(node: Any, sub_schema: dict) -> None:
    if isinstance(node, dict):
        for key, prop in sub_schema.get("properties", {}).items():
            if key not in node and "default" in prop:
                node[key] = copy.deepcopy(prop["default"])
            if key in node:
                _fill_defaults(node[key], prop)
    elif isinstance(node, list) and "items" in sub_schema:
        for item in node:
            _fill_defaults(item, sub_schema["items"])


def _require(reg: registry.Registry, name: str, key: str) -> None:
    if name not in reg:
        raise ConfigError(f"config key '{key}': unknown {reg.kind} {name!r}; allowed: {', '.join(reg.names())}")


def _unique(values: list, key: str) -> None:
    if len(set(values)) != len(values):
        raise ConfigError(f"config key '{key}': entries must be unique, got {values}")


def _check_names(cfg: dict, check_files: bool = True) -> None:
    _require(registry.DATASETS, cfg["dataset"]["name"], "dataset.name")
    _require(registry.PRUNABLE_SETS, cfg["prunable"], "prunable")
    for i, arch in enumerate(cfg["archs"]):
        _require(registry.MODELS, arch["name"], f"archs.{i}.name")
    _unique([a["name"] for a in cfg["archs"]], "archs")
    _unique([m["label"] for m in cfg["methods"]], "methods (labels)")
    for i, method in enumerate(cfg["methods"]):
        _check_method(method, f"methods.{i}")
    _unique([e["operator"] for e in cfg["oneshot"]], "oneshot (operators)")
    for i, entry in enumerate(cfg["oneshot"]):
        _check_oneshot(entry, f"oneshot.{i}")
    _unique(cfg["seeds"], "seeds")
    _check_schedule(cfg)
    _check_dataset(cfg, check_files)
    _check_task(cfg, check_files)


def _check_task(cfg: dict, check_files: bool) -> None:
    """The archs fit the dataset's task; what the task cannot do is refused (names the key)."""
    task = getattr(registry.DATASETS.get(cfg["dataset"]["name"]), "task", "classification")
    for i, arch in enumerate(cfg["archs"]):
        builder = registry.MODELS.get(arch["name"])
        own = getattr(builder, "task", "classification")
        if own != task:
            raise ConfigError(f"config key 'archs.{i}.name': {arch['name']!r} is a {own} model, but dataset "
                              f"{cfg['dataset']['name']!r} is a {task} task")
        if getattr(builder, "pretrained_folder", False):
            _check_folder(builder, arch, f"archs.{i}.pretrained", check_files)
        allowed = getattr(builder, "freezable", {})
        for j, part in enumerate(cfg["training"]["freeze"]):
            if part not in allowed:
                raise ConfigError(f"config key 'training.freeze.{j}': {arch['name']!r} has no part {part!r} "
                                  f"to freeze; allowed: {', '.join(allowed) or 'nothing'}")
    if task == "classification":
        return
    if cfg["bnt"]["trials"]:
        raise ConfigError(f"config key 'bnt.trials': {cfg['bnt']['trials']}, but a {task} model has no "
                          "BatchNorm to tune; allowed: 0")
    if cfg["training"]["gpus_per_run"] != 1:
        raise ConfigError(f"config key 'training.gpus_per_run': {task} trains on one process; allowed: 1")


def _check_folder(builder, arch: dict, key: str, check_files: bool) -> None:
    """A model built from a folder needs it named; its files are checked with the data's."""
    from .models.bert import check_folder

    if not arch.get("pretrained"):
        raise ConfigError(f"config key '{key}': {arch['name']!r} is built from a Transformers model folder; "
                          "give its path (e.g. models/bert-base-uncased)")
    if check_files:
        try:
            check_folder(arch["pretrained"], key)
        except FileNotFoundError as err:
            raise ConfigError(str(err)) from None


def _check_dataset(cfg: dict, check_files: bool = True) -> None:
    """Dataset keys, and batch and calibration sizes within the training split."""
    from .data import check_dataset_config

    dataset = cfg["dataset"]
    try:
        check_dataset_config(dataset, check_files)
    except (ValueError, FileNotFoundError) as err:
        raise ConfigError(str(err)) from None
    size, subset = getattr(registry.DATASETS.get(dataset["name"]), "train_size", None), dataset.get("train_subset")
    if size and subset and subset > size:
        raise ConfigError(f"config key 'dataset.train_subset': {subset} images, but {dataset['name']} "
                          f"has {size} training images; allowed: at most {size}")
    train = subset or size
    if not train:
        return  # a folder dataset: its size is known once it is indexed
    limits = [("training.batch_size", cfg["training"]["batch_size"])]
    if cfg["bnt"]["trials"]:
        limits += [("bnt.samples", cfg["bnt"]["samples"]), ("bnt.batch_size", cfg["bnt"]["batch_size"])]
    for key, value in limits:
        if value > train:
            raise ConfigError(f"config key '{key}': {value} exceeds the {train} training images; "
                              f"allowed: at most {train}")


def _check_schedule(cfg: dict) -> None:
    training = cfg["training"]
    for i, method in enumerate(cfg["methods"]):
        if method["epochs"] == 0:
            _check_as_given(cfg, f"methods.{i}.epochs")
    trained = [m["epochs"] or training["epochs"] for m in cfg["methods"] if m["epochs"] != 0]
    if not trained:
        return
    shortest = min(trained)
    if training["warmup_epochs"] >= shortest:
        raise ConfigError(f"config key 'training.warmup_epochs': {training['warmup_epochs']} warm-up epochs "
                          f"leave nothing of a {shortest}-epoch run; allowed: fewer than {shortest}")


def _check_as_given(cfg: dict, key: str) -> None:
    """0 epochs evaluate the weights as given: only pretrained weights are worth evaluating."""
    random = [a["name"] for a in cfg["archs"] if not a.get("pretrained")]
    if random:
        raise ConfigError(f"config key '{key}': 0 epochs evaluate the pretrained weights as given, but "
                          f"{', '.join(random)} has no 'pretrained'; allowed: 0 with every arch pretrained, or >= 1")


def _check_method(method: dict, key: str) -> None:
    from .optim.params import check_value  # the optimizers' package: torch

    _require(registry.METHODS, method["name"], f"{key}.name")
    accepted = registry.METHODS.fact(method["name"], "params")
    unknown = set(method["params"]) - set(accepted)
    if unknown:
        raise ConfigError(
            f"config key '{key}.params': method {method['name']!r} has no parameter(s) "
            f"{sorted(unknown)}; allowed: {sorted(accepted)}"
        )
    for name, value in sorted(method["params"].items()):
        allowed = check_value(name, value)
        if allowed:
            raise ConfigError(f"config key '{key}.params.{name}': {value!r} not allowed; allowed: {allowed}")
    _try_build(method, key)


def _try_build(method: dict, key: str) -> None:
    """Build the method once on a tiny model: the builder's own rules between parameters."""
    import torch
    from torch import nn

    from .optim.errors import ParamError

    with torch.random.fork_rng(devices=[]):
        model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(16, 2))
        prunable = [("0.weight", model[0].weight), ("3.weight", model[3].weight)]
        try:
            registry.METHODS.get(method["name"])(model, prunable, seed=0, **method["params"])
        except (ValueError, TypeError) as err:
            where = f"{key}.params.{err.param}" if isinstance(err, ParamError) else f"{key}.params"
            raise ConfigError(f"config key '{where}': {err}") from None


def _check_oneshot(entry: dict, key: str) -> None:
    _require(registry.COMPRESSORS, entry["operator"], f"{key}.operator")
    if entry["prunable"] is not None:
        _require(registry.PRUNABLE_SETS, entry["prunable"], f"{key}.prunable")
    try:
        compressor = registry.COMPRESSORS.get(entry["operator"]).configured(**entry["params"])
    except ValueError as err:
        raise ConfigError(f"config key '{key}.params': {err}") from None
    for j, level in enumerate(entry["levels"]):
        try:
            compressor.check(level)
        except ValueError as err:
            raise ConfigError(f"config key '{key}.levels.{j}': {err}") from None
    if entry.get("finetune"):
        _check_finetune(entry, compressor, f"{key}.finetune")


def _check_finetune(entry: dict, compressor, key: str) -> None:
    """The mask a finetune keeps is the pruned model's zeros: only pruning leaves one."""
    if not compressor.removes_fraction:
        pruning = [n for n in registry.COMPRESSORS.names() if registry.COMPRESSORS.fact(n, "removes_fraction")]
        raise ConfigError(f"config key '{key}': operator {entry['operator']!r} does not prune (its zeros are "
                          f"no mask to keep); allowed on: {', '.join(pruning)}")
    _check_method({"name": "masked", "params": entry["finetune"]["params"]}, key)

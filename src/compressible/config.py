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
import inspect
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Optional

import jsonschema
import yaml

from . import registry


class ConfigError(ValueError):
    """A config that cannot be run; the message names the key and what is allowed."""


@dataclass(frozen=True)
class Arch:
    name: str
    width: Optional[int]


@dataclass(frozen=True)
class Method:
    label: str
    name: str
    params: dict
    epochs: Optional[int]  # overrides training.epochs (the papers train dense baselines longer)


@dataclass(frozen=True)
class Training:
    epochs: int
    batch_size: int
    eval_batch_size: int
    warmup_epochs: float
    schedule: str
    milestones: list
    augment: bool
    threads: int
    gpus_per_run: int
    sync_bn: bool


@dataclass(frozen=True)
class OneShot:
    operator: str
    levels: list
    prunable: Optional[str]  # None: the experiment's prunable set


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
    resolved: dict

    def arch(self, name: str) -> Arch:
        return next(a for a in self.archs if a.name == name)

    def method(self, label: str) -> Method:
        return next(m for m in self.methods if m.label == label)

    def entry(self, operator: str) -> OneShot:
        return next(e for e in self.oneshot if e.operator == operator)


def schema() -> dict:
    text = resources.files("compressible.schemas").joinpath("config.schema.yaml").read_text()
    return yaml.safe_load(text)


def load_config(path: str | Path) -> Config:
    """Read, validate and complete the experiment config at ``path``."""
    with open(path) as handle:
        raw = yaml.safe_load(handle)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the config must be a YAML mapping")
    return validate_config(raw)


def validate_config(raw: dict) -> Config:
    """Schema check, defaults, registry names and method/operator parameters, then typed."""
    cfg = copy.deepcopy(raw)
    errors = sorted(jsonschema.Draft202012Validator(schema()).iter_errors(cfg), key=str)
    if errors:
        raise ConfigError("; ".join(_describe(e) for e in errors))
    _fill_defaults(cfg, schema())
    _check_names(cfg)
    return typed(cfg)


def typed(cfg: dict) -> Config:
    """The dataclass view of a validated, defaults-filled config mapping."""
    return Config(
        experiment=cfg["experiment"], description=cfg["description"], dataset=cfg["dataset"],
        archs=[Arch(**a) for a in cfg["archs"]], methods=[Method(**m) for m in cfg["methods"]],
        seeds=list(cfg["seeds"]), training=Training(**cfg["training"]), prunable=cfg["prunable"],
        oneshot=[OneShot(**e) for e in cfg["oneshot"]], bnt=BNT(**cfg["bnt"]),
        report=Report(**cfg["report"]), resolved=cfg)


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


def _check_names(cfg: dict) -> None:
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


def method_params(builder) -> dict[str, Any]:
    """The keyword parameters a method accepts, with their defaults: a CrAM preset's table, or
    the keyword-only arguments of a builder function (``seed`` comes from the run)."""
    if hasattr(builder, "params"):
        return dict(builder.params)
    return {n: p.default for n, p in inspect.signature(builder).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and n != "seed"}


def _check_method(method: dict, key: str) -> None:
    _require(registry.METHODS, method["name"], f"{key}.name")
    accepted = method_params(registry.METHODS.get(method["name"]))
    unknown = set(method["params"]) - set(accepted)
    if unknown:
        raise ConfigError(
            f"config key '{key}.params': method {method['name']!r} has no parameter(s) "
            f"{sorted(unknown)}; allowed: {sorted(accepted)}"
        )


def _check_oneshot(entry: dict, key: str) -> None:
    _require(registry.COMPRESSORS, entry["operator"], f"{key}.operator")
    if entry["prunable"] is not None:
        _require(registry.PRUNABLE_SETS, entry["prunable"], f"{key}.prunable")
    compressor = registry.COMPRESSORS.get(entry["operator"])
    for j, level in enumerate(entry["levels"]):
        try:
            compressor.check(level)
        except ValueError as err:
            raise ConfigError(f"config key '{key}.levels.{j}': {err}") from None

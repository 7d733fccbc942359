"""The experiment config: load YAML, check it against the schema, fill defaults, check names.

Everything is rejected at the boundary, before any job runs, with the offending key and the
allowed values in the message (a typo in a method name must not cost a training run).
"""
from __future__ import annotations

import copy
import hashlib
import inspect
import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from . import registry


class ConfigError(ValueError):
    """A config that cannot be run; the message names the key and what is allowed."""


def schema() -> dict:
    text = resources.files("compressible.schemas").joinpath("config.schema.yaml").read_text()
    return yaml.safe_load(text)


def load_config(path: str | Path) -> dict:
    """Read, validate and complete the experiment config at ``path``."""
    with open(path) as handle:
        raw = yaml.safe_load(handle)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the config must be a YAML mapping")
    return validate_config(raw)


def validate_config(raw: dict) -> dict:
    """Schema check, defaults, then registry names and method/operator parameters."""
    cfg = copy.deepcopy(raw)
    errors = sorted(jsonschema.Draft202012Validator(schema()).iter_errors(cfg), key=str)
    if errors:
        raise ConfigError("; ".join(_describe(e) for e in errors))
    _fill_defaults(cfg, schema())
    _check_names(cfg)
    return cfg


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


def _check_names(cfg: dict) -> None:
    import_registries()
    _require(registry.DATASETS, cfg["dataset"]["name"], "dataset.name")
    _require(registry.PRUNABLE_SETS, cfg.get("prunable", "weights"), "prunable")
    for i, arch in enumerate(cfg["archs"]):
        _require(registry.MODELS, arch["name"], f"archs.{i}.name")
    labels = [m["label"] for m in cfg["methods"]]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"config key 'methods': labels must be unique, got {labels}")
    for i, method in enumerate(cfg["methods"]):
        _check_method(method, f"methods.{i}")
    for i, entry in enumerate(cfg["oneshot"]):
        _check_oneshot(entry, f"oneshot.{i}")


def _check_method(method: dict, key: str) -> None:
    _require(registry.METHODS, method["name"], f"{key}.name")
    builder = registry.METHODS.get(method["name"])
    accepted = {
        n for n, p in inspect.signature(builder).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and n != "seed"
    }
    unknown = set(method.get("params", {})) - accepted
    if unknown:
        raise ConfigError(
            f"config key '{key}.params': method {method['name']!r} has no parameter(s) "
            f"{sorted(unknown)}; allowed: {sorted(accepted)}"
        )


def _check_oneshot(entry: dict, key: str) -> None:
    _require(registry.ONESHOT, entry["operator"], f"{key}.operator")
    if "prunable" in entry:
        _require(registry.PRUNABLE_SETS, entry["prunable"], f"{key}.prunable")
    operator = registry.ONESHOT.get(entry["operator"])
    for j, level in enumerate(entry["levels"]):
        try:
            operator.check(level)
        except ValueError as err:
            raise ConfigError(f"config key '{key}.levels.{j}': {err}") from None


def import_registries() -> None:
    """Import the modules whose decorators fill the registries."""
    from . import compress, data, models, optim  # noqa: F401


def run_spec(cfg: dict, arch: str, method_label: str, seed: int) -> dict:
    """Everything that determines one training run (its hash names the run's parameters)."""
    arch_cfg = next(a for a in cfg["archs"] if a["name"] == arch)
    method = next(m for m in cfg["methods"] if m["label"] == method_label)
    training = dict(cfg["training"], epochs=method.get("epochs", cfg["training"]["epochs"]))
    return {
        "dataset": cfg["dataset"], "arch": arch_cfg, "method": method, "seed": seed,
        "training": training, "prunable": cfg.get("prunable", "weights"),
    }


def spec_hash(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]

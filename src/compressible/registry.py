"""A tiny name -> builder registry (the torchvision ``register_model`` pattern).

Adding a model, dataset, method or compressor is adding one decorated function or one
registered object; nothing else in the code branches on names. Each registry knows the package
whose imports fill it and imports it on first use, so a reader of a registry (the config check,
the trainer) needs no list of modules to import first.

A registry also names the *facts* of its entries that planning reads (a method's
``uses_prunable``, a compressor's ``removes_fraction``): ``fact()`` answers them from facts
``remember``-ed earlier without importing the package (and torch), which is how a Snakefile parse
of an already checked config stays torch-free (config_memo.py).
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable, Dict, Iterator


class Registry:
    """Maps names to builders; unknown names fail with the list of allowed ones."""

    def __init__(self, kind: str, owner: str, facts: tuple[tuple[str, Any], ...] = ()):
        self.kind = kind
        self.owner = owner  # the package whose import registers every entry
        # attribute -> its value where an entry does not set it (a function: computed from the entry)
        self.facts = dict(facts)
        self._builders: Dict[str, Any] = {}
        self._remembered: Dict[str, dict] = {}

    def register(self, name: str) -> Callable[[Any], Any]:
        def decorator(builder: Any) -> Any:
            if name in self._builders:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._builders[name] = builder
            return builder

        return decorator

    def _filled(self) -> Dict[str, Any]:
        importlib.import_module(self.owner)  # a no-op once imported
        return self._builders

    def get(self, name: str) -> Any:
        builders = self._filled()
        if name not in builders:
            raise KeyError(f"unknown {self.kind} {name!r}; allowed: {', '.join(self.names())}")
        return builders[name]

    def names(self) -> list[str]:
        return sorted(self._filled())

    def __contains__(self, name: str) -> bool:
        return name in self._filled()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def fact(self, name: str, attribute: str) -> Any:
        """One of the registry's facts about entry ``name``, remembered or read off the entry."""
        if name in self._remembered:
            return self._remembered[name][attribute]
        entry, default = self.get(name), self.facts[attribute]
        if hasattr(entry, attribute):
            return getattr(entry, attribute)
        return default(entry) if callable(default) else default

    def all_facts(self) -> dict[str, dict]:
        """Every entry's facts (imports the package)."""
        return {name: {a: self.fact(name, a) for a in self.facts} for name in self.names()}

    def remember(self, facts: dict[str, dict]) -> None:
        """Take ``all_facts()`` as recorded by the same code: ``fact()`` then imports nothing."""
        if any(set(entry) != set(self.facts) for entry in facts.values()):
            raise ValueError(f"remembered {self.kind} facts name other attributes than {sorted(self.facts)}")
        self._remembered = dict(facts)


def keyword_params(builder: Callable) -> dict[str, Any]:
    """A builder function's keyword-only parameters with their defaults (``seed`` comes from
    the run): the parameters of a method without a table of its own (CrAM's presets have one)."""
    return {n: p.default for n, p in inspect.signature(builder).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and n != "seed"}


MODELS = Registry("architecture", "compressible.models")
DATASETS = Registry("dataset", "compressible.data.prepared", facts=(("task", "classification"),))
METHODS = Registry("method", "compressible.optim", facts=(("uses_prunable", True), ("params", keyword_params)))
COMPRESSORS = Registry("compressor", "compressible.compress", facts=(("removes_fraction", False),))
CONSTRAINTS = Registry("constraint", "compressible.optim")
PRUNABLE_SETS = Registry("prunable set", "compressible.compress")
TASKS = Registry("task", "compressible.tasks", facts=(("primary", None),))
ALL = (MODELS, DATASETS, METHODS, COMPRESSORS, CONSTRAINTS, PRUNABLE_SETS, TASKS)

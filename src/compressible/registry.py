"""A tiny name -> builder registry (the torchvision ``register_model`` pattern).

Adding a model, dataset, method or compressor is adding one decorated function or one
registered object; nothing else in the code branches on names. Each registry knows the package
whose imports fill it and imports it on first use, so a reader of a registry (the config check,
the trainer) needs no list of modules to import first.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Dict, Iterator


class Registry:
    """Maps names to builders; unknown names fail with the list of allowed ones."""

    def __init__(self, kind: str, owner: str):
        self.kind = kind
        self.owner = owner  # the package whose import registers every entry
        self._builders: Dict[str, Any] = {}

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


MODELS = Registry("architecture", "compressible.models")
DATASETS = Registry("dataset", "compressible.data")
METHODS = Registry("method", "compressible.optim")
COMPRESSORS = Registry("compressor", "compressible.compress")
CONSTRAINTS = Registry("constraint", "compressible.optim")
PRUNABLE_SETS = Registry("prunable set", "compressible.compress")
TASKS = Registry("task", "compressible.tasks")

"""A tiny name -> builder registry (the torchvision ``register_model`` pattern).

Adding a model, dataset, method or compressor is adding one decorated function;
nothing else in the code branches on names.
"""
from __future__ import annotations

from typing import Callable, Dict, Iterator


class Registry:
    """Maps names to builders; unknown names fail with the list of allowed ones."""

    def __init__(self, kind: str):
        self.kind = kind
        self._builders: Dict[str, Callable] = {}

    def register(self, name: str) -> Callable[[Callable], Callable]:
        def decorator(builder: Callable) -> Callable:
            if name in self._builders:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._builders[name] = builder
            return builder

        return decorator

    def get(self, name: str) -> Callable:
        if name not in self._builders:
            raise KeyError(f"unknown {self.kind} {name!r}; allowed: {', '.join(self.names())}")
        return self._builders[name]

    def names(self) -> list[str]:
        return sorted(self._builders)

    def __contains__(self, name: str) -> bool:
        return name in self._builders

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


MODELS = Registry("architecture")
DATASETS = Registry("dataset")
METHODS = Registry("method")
ONESHOT = Registry("one-shot compressor")
TRAIN_COMPRESSORS = Registry("training compressor")
CONSTRAINTS = Registry("constraint")
PRUNABLE_SETS = Registry("prunable set")

"""The error a method builder raises for one of its parameters."""
from __future__ import annotations


class ParamError(ValueError):
    """A method parameter the builder refuses; ``param`` names it, so the config check reports
    ``methods.<i>.params.<param>`` rather than the whole ``params`` mapping."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param

"""YAML that refuses a key given twice in one mapping.

PyYAML keeps the last of two equal keys silently, so a config with ``seeds:`` twice would be
planned and run with the second value. Every config the project reads goes through here; the
error names the key and both lines (torch-free: the Snakefile uses it at parse time).
"""
from __future__ import annotations

from typing import Any, Union

import yaml
from yaml.constructor import ConstructorError


class DuplicateKeyError(ConstructorError):
    """A mapping that gives one key twice; ``problem_mark`` points at the second."""


def _refuse_duplicates(loader, node: yaml.MappingNode) -> None:
    seen: dict = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *anchor`: the keys it brings may be overridden, as YAML allows
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.setdefault(key, key_node.start_mark)
        except TypeError:
            continue  # an unhashable key: the constructor itself refuses it
        if first is not key_node.start_mark:
            raise DuplicateKeyError(None, None, f"duplicate key {key!r} (first given on line {first.line + 1})",
                                    key_node.start_mark)


def _strict(base: type) -> type:
    class Strict(base):
        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                _refuse_duplicates(self, node)
            return super().construct_mapping(node, deep=deep)

    Strict.__name__ = f"Strict{base.__name__}"
    return Strict


StrictLoader = _strict(yaml.SafeLoader)
# libyaml's parser where present (the pure-Python one takes a second for a large file)
FastStrictLoader = _strict(getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def load(stream: Union[str, bytes, Any], fast: bool = False) -> Any:
    """``yaml.safe_load``, refusing duplicate keys."""
    return yaml.load(stream, Loader=FastStrictLoader if fast else StrictLoader)


def describe(err: yaml.YAMLError, source: str) -> str:
    """``source:line:column: not valid YAML: problem``: one line for a config error."""
    mark = getattr(err, "problem_mark", None)
    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else str(source)
    return f"{where}: not valid YAML: {getattr(err, 'problem', None) or err}"

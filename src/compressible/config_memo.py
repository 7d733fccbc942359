"""A config checked once per code version.

The full check (:func:`config.validate_config`) builds every method once on a toy model, so it
imports torch (over a second of CPU), and the Snakefile is parsed again for every dry run, rerun
and cluster job. The check's verdict is a pure function of the resolved config and the code that
checks it (with ``check_files=False`` no file is read), so it is remembered: a record keyed by the
sha256 of the resolved config, this package's files and the versions of the libraries the check
runs, kept twice: in the working directory's ``.snakemake/compressible/checked`` (every job of the
workflow sees it, on any node of a cluster) and in the user's cache
(``$XDG_CACHE_HOME/compressible/checked``, else ``~/.cache/...``: the key names what was checked,
not where, so every clone of the project shares it). A later check of the same config by the same code reads the record (and the registries' facts that
planning needs, ``registry.Registry.fact``) instead of importing torch. Anything else (a changed
config, an edited file, another torch) is a different key and is checked in full; a record that
cannot be read is checked again, and one that cannot be written (a read-only home) is only not
remembered.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from . import registry
from .config import Config, resolve, typed, validate_config

LIBRARIES = ("torch", "torchvision", "transformers", "jsonschema")  # what the full check runs


def code_digest() -> str:
    """sha256 over this package's source files (path and bytes) and the libraries' versions."""
    package, digest = Path(__file__).parent, hashlib.sha256(sys.version.encode())
    for path in sorted(p for p in package.rglob("*") if p.suffix in (".py", ".yaml", ".json") and p.is_file()):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes() + b"\0")
    for library in LIBRARIES:
        try:
            digest.update(f"{library}={metadata.version(library)}\0".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{library} absent\0".encode())
    return digest.hexdigest()


def memo_key(resolved: dict) -> str:
    text = json.dumps(resolved, sort_keys=True) + "\0" + code_digest()
    return hashlib.sha256(text.encode()).hexdigest()


WORKFLOW_MEMO = Path(".snakemake", "compressible", "checked")  # in Snakemake's own folder


def memo_dirs() -> list[Path]:
    """Where records are kept, the first found read: the working directory's, then the user's
    cache as the XDG base directory specification places it."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "compressible", "checked")
    return [WORKFLOW_MEMO, cache]


def checked_config(raw: dict, memo_dir: str | Path | None = None) -> Config:
    """``validate_config(raw, check_files=False)``, remembered in ``memo_dir`` (default: both
    places of :func:`memo_dirs`): the same resolved config checked by the same code is not
    checked again (nor torch imported)."""
    resolved = resolve(raw)  # schema errors are found without the memo
    name = f"{memo_key(resolved)}.json"
    places = [Path(memo_dir)] if memo_dir is not None else memo_dirs()
    for found, place in enumerate(places):
        facts = _read_facts(place / name)
        if facts is not None:
            for reg in _with_facts():
                reg.remember(facts[reg.kind])
            _remember(places[:found], name, facts)  # e.g. a new clone's own copy of the user's
            return typed(resolved)
    cfg = validate_config(raw, check_files=False)
    _remember(places, name, {reg.kind: reg.all_facts() for reg in _with_facts()})
    return cfg


def _remember(places: list[Path], name: str, facts: dict) -> None:
    text = json.dumps(facts, sort_keys=True) + "\n"
    for place in places:
        try:
            _write_atomically(place / name, text)
        except OSError:
            pass  # not remembered there (a read-only home): a later parse reads the other or checks again


def _with_facts() -> list[registry.Registry]:
    return [reg for reg in registry.ALL if reg.facts]


def _read_facts(record: Path) -> dict | None:
    try:
        facts = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    kinds = {reg.kind: set(reg.facts) for reg in _with_facts()}
    if not isinstance(facts, dict) or set(facts) != set(kinds) or any(
            not isinstance(facts[kind], dict) or any(not isinstance(entry, dict) or set(entry) != kinds[kind]
                                                     for entry in facts[kind].values()) for kind in kinds):
        return None  # written by other code (a key collision is not expected): check in full
    return facts


def _write_atomically(path: Path, text: str) -> None:
    """Never a half-written record: a temporary file in the same folder, renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".partial")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        raise

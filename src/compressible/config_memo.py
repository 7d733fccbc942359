"""A config checked once per code version.

The full check (:func:`config.validate_config`) builds every method once on a toy model, so it
imports torch (over a second of CPU), and the Snakefile is parsed again for every dry run, rerun
and cluster job. The check's verdict is a pure function of the resolved config and the code that
checks it (with ``check_files=False`` no file is read), so it is remembered: a record in the
user's cache (``$XDG_CACHE_HOME/compressible/checked``, else ``~/.cache/...``) keyed by the sha256
of the resolved config, this package's files and the versions of the libraries the check runs. The
key names what was checked, not where, so every clone and working directory shares the records. A
later check of the same config by the same code reads the record (and the registries' facts that planning needs, ``registry.Registry.fact``)
instead of importing torch. Anything else (a changed config, an edited file, another torch) is a
different key and is checked in full; a record that cannot be read is checked again, and one that
cannot be written (a read-only home) is only not remembered.
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


def default_memo_dir() -> Path:
    """The user's cache, as the XDG base directory specification places it."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "compressible", "checked")


def checked_config(raw: dict, memo_dir: str | Path | None = None) -> Config:
    """``validate_config(raw, check_files=False)``, remembered in ``memo_dir`` (default: the
    user's cache): the same resolved config checked by the same code is not checked again (nor
    torch imported)."""
    resolved = resolve(raw)  # schema errors are found without the memo
    record = Path(memo_dir or default_memo_dir()) / f"{memo_key(resolved)}.json"
    facts = _read_facts(record)
    if facts is not None:
        for reg in _with_facts():
            reg.remember(facts[reg.kind])
        return typed(resolved)
    cfg = validate_config(raw, check_files=False)
    try:
        _write_atomically(record, json.dumps({reg.kind: reg.all_facts() for reg in _with_facts()}, sort_keys=True))
    except OSError:
        pass  # checked, only not remembered: the next parse checks in full again
    return cfg


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
            out.write(text + "\n")
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        raise

"""Checksums of raw dataset files, verified at every preparation (not only after a download)."""
from __future__ import annotations

import hashlib
from pathlib import Path


class IntegrityError(ValueError):
    """A raw dataset file whose checksum is not the official one."""


def md5(path: str | Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_md5(path: str | Path, expected: str) -> None:
    """Raise :class:`IntegrityError` naming ``path`` unless its md5 is ``expected``."""
    found = md5(path)
    if found != expected:
        raise IntegrityError(f"{path}: md5 {found} is not the official {expected}; the file is "
                             "damaged or not the official release (replace it with the official file)")


def missing_root(key: str, path: Path, what: str) -> FileNotFoundError:
    """The error for a dataset folder that is not there: the config key and the path."""
    return FileNotFoundError(f"config key '{key}': {path} does not exist ({what})")

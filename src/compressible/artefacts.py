"""Reading the files the workflow writes: a truncated or corrupt one is named, never half-used.

Every writer goes through a temporary name and a rename (``provenance.write_json_atomic``,
``checkpoint.save_checkpoint``), so a corrupt file means outside damage (a copy cut short, a
disk error); the remedy is always the same: delete it and let the workflow rebuild it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable


class ArtefactError(RuntimeError):
    """A result file that cannot be read; the message names it and says how to rebuild it."""


def unreadable(path: str | Path, what: str, err: Exception) -> ArtefactError:
    return ArtefactError(f"{path}: unreadable {what} ({type(err).__name__}: {err}); "
                         f"delete it and rerun the workflow to rebuild it")


def read_with(path: str | Path, what: str, reader: Callable[[Path], Any]) -> Any:
    """``reader(path)``, with any failure to read or parse it reported as an ArtefactError."""
    try:
        return reader(Path(path))
    except FileNotFoundError:
        raise ArtefactError(f"{path}: missing {what}; rerun the workflow to build it") from None
    except Exception as err:  # noqa: BLE001 - every parse error of every format means the same here
        raise unreadable(path, what, err) from None


def read_json(path: str | Path, what: str = "result") -> Any:
    return read_with(path, what, lambda p: json.loads(p.read_text()))

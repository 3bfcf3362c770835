"""Where a dataset's outputs go by default: ``data/output/<name>/<kind>``.

The name must be one dataset's alone: two datasets that share a folder name
(``/a/data``, ``/b/data``) must not overwrite each other's outputs. A
dataset kept directly under ``./data/`` (as ``data/demo``) is named after its
folder, which no other dataset there can share; any other dataset gets its
folder name plus a short hash of its absolute path or URL (credentials and
query string left out, so a new token keeps the name). Names hold only
letters, digits, ``.``, ``_`` and ``-``, so the Makefile can use them as
file names (a space would break every target).

Light to import (standard library only): the Makefile runs
``python -m features.io.naming DATASET`` to name its output folders the same
way as the commands do.
"""
from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from .storage import is_url, local_path, redact

__all__ = ["OUTPUT_ROOT", "default_output", "output_name"]

#: Where outputs go when no folder is given, relative to the current folder.
OUTPUT_ROOT = Path("data") / "output"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def output_name(root: str | os.PathLike[str], cwd: str | os.PathLike[str] | None = None) -> str:
    """The name of a dataset's output folder (see the module docstring).

    Examples
    --------
    >>> output_name("data/demo", cwd="/work/project")
    'demo'
    >>> output_name("/a/data", cwd="/work") == output_name("/b/data", cwd="/work")
    False
    >>> output_name("https://me:pw@host/sets/us8k?token=1")
    'us8k-4698f316'
    """
    text = os.fspath(root)
    if is_url(text):
        shown = redact(text).rstrip("/")
        return _named(shown.rsplit("/", 1)[-1] or "dataset", shown, always_hash=True)
    here = Path(cwd) if cwd is not None else Path.cwd()
    path = Path(os.path.abspath(here / local_path(text)))
    direct = path.parent == Path(os.path.abspath(here / "data"))
    return _named(path.name or "dataset", str(path), always_hash=not direct)


def _named(name: str, identity: str, *, always_hash: bool) -> str:
    safe = _UNSAFE.sub("_", name).strip("._") or "dataset"
    if not always_hash and safe == name:
        return safe
    digest = hashlib.sha256(identity.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{safe}-{digest}"


def default_output(root: str | os.PathLike[str], kind: str) -> Path:
    """``data/output/<output_name(root)>/<kind>`` (relative to the current folder)."""
    return OUTPUT_ROOT / output_name(root) / kind


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m features.io.naming DATASET``: print the dataset's output name."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m features.io.naming DATASET", file=sys.stderr)
        return 2
    print(output_name(args[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

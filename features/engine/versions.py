"""The versions of the libraries a run depends on: one lookup for every file that records them.

``features.json``, ``patches.json``, ``run.json``, a model's ``bundle.json``
and the check that every Dask worker runs what this machine runs all read
:func:`library_versions`, so they agree on every name and on what a missing
library is called (``not installed``).
"""
from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Sequence

__all__ = ["ARITHMETIC", "NOT_INSTALLED", "library_versions", "version_of"]

NOT_INSTALLED = "not installed"
#: The libraries whose arithmetic is in a feature table (a worker must run the same ones).
ARITHMETIC = ("numpy", "soundfile", "soxr", "audioread", "fsspec")


def version_of(distribution: str) -> str:
    """The installed version of ``distribution``, or :data:`NOT_INSTALLED`."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return NOT_INSTALLED


def library_versions(names: Sequence[str] = ARITHMETIC) -> dict[str, str]:
    """``python`` (major.minor), each of ``names`` and ``soundfeatures``, by name.

    Examples
    --------
    >>> sorted(library_versions(("numpy",)))
    ['numpy', 'python', 'soundfeatures']
    """
    found = {"python": ".".join(platform.python_version_tuple()[:2])}
    found.update({name: version_of(name) for name in names})
    found["soundfeatures"] = version_of("soundfeatures")
    return found

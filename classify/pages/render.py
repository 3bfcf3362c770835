"""Rendering the pages: one Jinja2 environment, autoescaping everything.

Page modules pass plain values (numbers, text, paths, :class:`Table`) to a
template in ``templates/``; every value is escaped on output, whatever it
is called or where it came from, because autoescaping is on for every
template. The only markup on a page is the templates' own: no Python code
builds HTML, and no value is marked safe.
"""
from __future__ import annotations

import contextlib
import dataclasses
import numbers
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import numpy as np
import pandas as pd

from features.engine.outputs import STAGING, OutputLock, clean_leftovers, commit
from features.io.atomic import file_sha256, write_json, write_text
from features.io.ownership import claim

__all__ = ["PAGE_JSON", "Table", "page_folder", "rel_url", "render_page", "slug"]

#: The description file of a page folder: what made it and every file it wrote.
PAGE_JSON = "page.json"
#: Names every page folder has (``--force`` never replaces one it did not write).
PAGE_NAMES = ("index.html", "audio", PAGE_JSON)

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("classify.pages", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


@dataclasses.dataclass(frozen=True)
class Table:
    """A table to show: column names and rows of raw values (formatted by the template)."""

    columns: list[str]
    rows: list[list[Any]]

    @classmethod
    def of(cls, df: pd.DataFrame) -> Table:
        """The rows of ``df`` (its index is not shown)."""
        return cls([str(c) for c in df.columns], [list(r) for r in df.itertuples(index=False, name=None)])


@contextlib.contextmanager
def page_folder(out: str | os.PathLike[str], *, kind: str, command: str, force: bool = False,
                dataset_root: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """Build a page in a staging folder, then move it into ``out`` as a set.

    The folder rules of :mod:`features.io.ownership` apply: ``out`` must be
    new, empty or an earlier page's (whose files are replaced, and no
    others); ``force`` writes beside someone else's files; a folder inside
    the dataset (``dataset_root``) is refused. ``page.json`` lists the
    files, with their SHA-256, and is moved in last.

    Yields
    ------
    Path
        The staging folder to write the page into.
    """
    out = Path(out)
    previous = claim(out, PAGE_JSON, PAGE_NAMES, force=force, dataset_root=dataset_root,
                     command=command)
    with OutputLock(out):
        clean_leftovers(out)
        staging = out / f"{STAGING}{uuid.uuid4().hex[:12]}"
        staging.mkdir()
        try:
            yield staging
            files = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*")
                           if p.is_file())
            write_json({"format": "soundfeatures-page", "kind": kind,
                        "files": {n: {"sha256": file_sha256(staging / n)} for n in files}},
                       staging / PAGE_JSON)
            commit(out, staging, files, PAGE_JSON, previous=previous)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def render_page(template: str, path: str | os.PathLike[str], **context: Any) -> Path:
    """Render ``templates/<template>`` with ``context`` and write it to ``path`` atomically."""
    return write_text(path, _ENV.get_template(template).render(**context))


def slug(text: str, *, max_len: int = 60) -> str:
    """File-name-safe ASCII version of ``text`` (class names, model names, clip names).

    Examples
    --------
    >>> slug("children playing/é #2")
    'children_playing_2'
    """
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._")
    return cleaned[:max_len] or "x"


def rel_url(target: str | os.PathLike[str], base_dir: str | os.PathLike[str]) -> str:
    """Relative, percent-encoded URL from a page in ``base_dir`` to ``target``.

    Examples
    --------
    >>> rel_url("/out/audio/dog bark.wav", "/out")
    'audio/dog%20bark.wav'
    """
    rel = os.path.relpath(os.fspath(target), os.fspath(base_dir))
    return quote(Path(rel).as_posix(), safe="/._-~")


# ------------------------------------------------------- template helpers


def _is_number(value: Any) -> bool:
    """Template test ``is number_cell``: right-aligned (numbers, not booleans or NaN)."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)
            and not pd.isna(value))


def _cell(value: Any, digits: int = 3) -> str:
    """Template filter ``cell``: a table cell's text (thousands separators, ``digits`` decimals)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, bool | np.bool_):
        return str(value)
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        return f"{float(value):,.{digits}f}"
    return str(value)


_ENV.tests["number_cell"] = _is_number
_ENV.filters["cell"] = _cell
_ENV.filters["percent"] = lambda value, digits=0: f"{float(value):.{digits}%}"
_ENV.filters["fixed"] = lambda value, digits=3: f"{float(value):.{digits}f}"

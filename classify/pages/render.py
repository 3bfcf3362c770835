"""Rendering the pages: one Jinja2 environment, autoescaping everything.

Page modules pass plain values (numbers, text, paths, :class:`Table`) to a
template in ``templates/``; every value is escaped on output, whatever it
is called or where it came from, because autoescaping is on for every
template. The only markup on a page is the templates' own: no Python code
builds HTML, and no value is marked safe.
"""
from __future__ import annotations

import dataclasses
import numbers
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import numpy as np
import pandas as pd

from features.atomic import write_text

__all__ = ["Table", "rel_url", "render_page", "slug"]

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

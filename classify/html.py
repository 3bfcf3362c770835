"""Small helpers for the self-contained HTML pages (EDA and report).

The pages open from disk in any browser and survive being zipped: CSS is
inline, there is no JavaScript and no external resource, and images and
audio are referenced by relative, percent-encoded paths. Functions taking
``text`` escape it; arguments named ``body`` or ``*_html`` are trusted HTML
built with these helpers.
"""
from __future__ import annotations

import html
import numbers
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

__all__ = [
    "audio",
    "details",
    "esc",
    "figure",
    "key_values",
    "note",
    "page",
    "rel_url",
    "section",
    "slug",
    "table",
    "write_page",
]

_CSS = """
:root { --fg: #1b1b1b; --muted: #5c5c5c; --line: #d9d9d9; --bg-alt: #f5f6f8; --accent: #0072B2; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--fg); margin: 0; background: #fff; }
main { max-width: 1240px; margin: 0 auto; padding: 1.2rem 1.6rem 3rem; }
header.page { border-bottom: 3px solid var(--accent); margin-bottom: 1rem; }
h1 { font-size: 1.7rem; margin: 0.2rem 0 0.3rem; }
h2 { font-size: 1.3rem; margin: 2.2rem 0 0.6rem; padding-bottom: 0.2rem; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.08rem; margin: 1.4rem 0 0.4rem; }
p.sub, .muted { color: var(--muted); }
nav.toc { font-size: 0.92rem; margin: 0.4rem 0 1rem; }
nav.toc a { margin-right: 1rem; white-space: nowrap; }
a { color: var(--accent); }
code { background: var(--bg-alt); padding: 0 0.25em; border-radius: 3px; font-size: 0.92em; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid var(--line); padding: 0.28rem 0.6rem; text-align: left; vertical-align: top; }
th { background: var(--bg-alt); }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.best td { font-weight: 600; background: #eef6fc; }
figure { margin: 0.6rem 0 1.4rem; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 0.88rem; margin-top: 0.2rem; }
audio { width: 240px; max-width: 100%; height: 32px; vertical-align: middle; }
.note { border-left: 5px solid var(--accent); background: #eef6fc; padding: 0.6rem 0.9rem; margin: 0.8rem 0; }
.note.warn { border-color: #E69F00; background: #fff6e0; }
.note.danger { border-color: #D55E00; background: #fde8dc; font-size: 1.05rem; }
details { border: 1px solid var(--line); border-radius: 4px; padding: 0.3rem 0.8rem; margin: 0.6rem 0; }
details > summary { cursor: pointer; font-weight: 600; padding: 0.2rem 0; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(290px, 1fr)); gap: 0.9rem; }
.card { border: 1px solid var(--line); border-radius: 4px; padding: 0.6rem; font-size: 0.88rem; }
.card img { max-width: 100%; height: auto; display: block; margin: 0.3rem 0; }
.card .path { word-break: break-all; color: var(--muted); }
"""


def esc(value: object) -> str:
    """Escape any value for HTML text or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


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


def page(title: str, body: str, *, subtitle: str = "", toc: Sequence[tuple[str, str]] = ()) -> str:
    """A complete HTML5 document with the inline style sheet.

    Parameters
    ----------
    title : str
        Page title and top heading (escaped).
    body : str
        Trusted HTML for the main content.
    subtitle : str
        One line under the heading (escaped).
    toc : sequence of (anchor, text)
        Links to the page's sections.
    """
    nav = ""
    if toc:
        links = " ".join(f'<a href="#{esc(anchor)}">{esc(text)}</a>' for anchor, text in toc)
        nav = f'<nav class="toc">{links}</nav>'
    sub = f'<p class="sub">{esc(subtitle)}</p>' if subtitle else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        f'<header class="page"><h1>{esc(title)}</h1>{sub}{nav}</header>\n'
        f"{body}\n</main>\n</body>\n</html>\n"
    )


def section(anchor: str, heading: str, body: str) -> str:
    """``<section>`` with an ``<h2>`` the table of contents can link to."""
    return f'<section id="{esc(anchor)}">\n<h2>{esc(heading)}</h2>\n{body}\n</section>\n'


def figure(src: str, alt: str, caption: str = "") -> str:
    """An image (``src`` already a relative URL) with alt text and an optional caption."""
    if not alt.strip():
        raise ValueError(f"figure {src!r} needs a non-empty alt text")
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{esc(src)}" alt="{esc(alt)}">{cap}</figure>\n'


def audio(src: str, label: str) -> str:
    """A native audio player for ``src`` (relative URL); ``label`` names it for screen readers."""
    return (f'<audio controls preload="none" src="{esc(src)}" aria-label="{esc(label)}">'
            f'<a href="{esc(src)}">{esc(label)}</a></audio>')


def note(text_html: str, kind: str = "info") -> str:
    """A highlighted box: ``info``, ``warn`` or ``danger`` (trusted HTML inside)."""
    if kind not in ("info", "warn", "danger"):
        raise ValueError(f"kind={kind!r} must be 'info', 'warn' or 'danger'")
    role = ' role="alert"' if kind == "danger" else ""
    return f'<div class="note {kind}"{role}>{text_html}</div>\n'


def details(summary: str, body: str, *, expanded: bool = False) -> str:
    """A collapsible block: ``summary`` is escaped text, ``body`` trusted HTML."""
    return f"<details{' open' if expanded else ''}><summary>{esc(summary)}</summary>\n{body}\n</details>\n"


def table(df: pd.DataFrame, *, digits: int = 3, highlight: Iterable[int] = (),
          html_columns: Iterable[str] = ()) -> str:
    """A DataFrame as an HTML table: escaped cells, right-aligned rounded numbers.

    Parameters
    ----------
    df : pd.DataFrame
        Rows to show (the index is not shown).
    digits : int
        Decimals for float cells.
    highlight : iterable of int
        Positional row numbers drawn in bold (e.g. the best model).
    html_columns : iterable of str
        Columns whose cells are trusted HTML (audio players, images) and not escaped.
    """
    marked = set(highlight)
    raw = set(html_columns)
    head = "".join(f"<th>{esc(c)}</th>" for c in df.columns)
    rows = []
    for i, record in enumerate(df.itertuples(index=False, name=None)):
        cells = []
        for column, value in zip(df.columns, record, strict=True):
            if column in raw:
                cells.append(f"<td>{value}</td>")
            else:
                text, numeric = _cell(value, digits)
                cells.append(f'<td class="num">{text}</td>' if numeric else f"<td>{text}</td>")
        cls = ' class="best"' if i in marked else ""
        rows.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>\n"


def key_values(pairs: Iterable[tuple[str, object]]) -> str:
    """A two-column table of labelled values (escaped)."""
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{_cell(v, 3)[0]}</td></tr>" for k, v in pairs)
    return f"<table>\n<tbody>{rows}</tbody>\n</table>\n"


def _cell(value: object, digits: int) -> tuple[str, bool]:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "", False
    if isinstance(value, bool | np.bool_):
        return esc(value), False
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}", True
    if isinstance(value, numbers.Real):
        return f"{float(value):,.{digits}f}", True
    return esc(value), False


def write_page(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically (a reader never sees half a page)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the page is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path

"""The two self-contained HTML pages: dataset exploration and training report.

:func:`build_eda` (``python -m classify eda``) and :func:`build_report`
(``python -m classify report``) gather their numbers, draw their figures
with :mod:`classify.plots`, then render a Jinja2 template from
``templates/`` with autoescaping on (:mod:`classify.pages.render`).

The pages open from disk in any browser and survive being zipped: CSS is
inline, there is no JavaScript and no external resource, and images and
audio are referenced by relative, percent-encoded paths.
"""
from __future__ import annotations

from .eda import build_eda
from .report import build_report

__all__ = ["build_eda", "build_report"]

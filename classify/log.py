"""Where the commands' progress and warnings go.

Every long step takes a ``log`` (progress, default :func:`print`) and a
``warn`` (default :func:`stderr_warning`) so that a caller (a test, a
notebook) can collect them instead.
"""
from __future__ import annotations

import sys
from collections.abc import Callable

__all__ = ["Log", "stderr_warning"]

#: A function that shows one line to the user.
Log = Callable[[str], None]


def stderr_warning(message: str) -> None:
    """Print ``warning: message`` to standard error at once."""
    print(f"warning: {message}", file=sys.stderr, flush=True)

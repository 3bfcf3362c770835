"""argparse value types shared by the two command lines (``features`` and ``classify``).

Each is passed as ``type=`` to :meth:`argparse.ArgumentParser.add_argument`;
a bad value becomes argparse's usual one-line usage error naming the option
and the value.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["int_at_least"]


def int_at_least(minimum: int, hint: str = "") -> Callable[[str], int]:
    """argparse ``type=`` for whole numbers >= ``minimum``; the message names the value.

    Parameters
    ----------
    minimum : int
        Smallest accepted value.
    hint : str
        Said after the minimum in the message, e.g. ``" (all cores)"``.

    Examples
    --------
    >>> int_at_least(1)("3")
    3
    """
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be {minimum}{hint} or more")
        return value

    return parse

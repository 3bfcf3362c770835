"""Plain values: type checks of user options, and values made fit for JSON.

>>> is_int(3), is_int(True), is_real(0.5), is_real("0.5")
(True, False, True, False)
>>> json_safe({"k": np.int64(3), "t": (1.5, None)})
{'k': 3, 't': [1.5, None]}
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["is_int", "is_real", "json_safe"]


def is_int(value: Any) -> bool:
    """An integer (Python or numpy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """A real number (Python or numpy), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def json_safe(value: Any) -> Any:
    """``value`` with numpy scalars made Python, tuples made lists, option objects made dicts.

    Anything else JSON cannot hold becomes its ``repr``.
    """
    if hasattr(value, "to_dict") and not isinstance(value, (pd.DataFrame, pd.Series)):
        return json_safe(value.to_dict())  # Augmentation, PatchParams
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)

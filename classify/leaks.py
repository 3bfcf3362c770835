"""Feature columns that are the label in disguise, found before any model sees them.

A column that names each row's class under another spelling (ESC-50's
``target``, UrbanSound8K's ``classID`` renamed) makes every model perfect
and every number meaningless. :func:`label_leaks` finds them by name and
by how their values map onto the classes; ``classify train`` leaves them
out of the features (``--keep-column NAME`` keeps one that really is a
feature) and says so.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .tables import FeatureTable

__all__ = ["LEAK_PURITY", "label_leaks"]



#: How nearly a column must map onto the classes, both ways, to be the label in disguise:
#: the share of rows whose value names their class (and whose class names their value).
LEAK_PURITY = 0.98


# Names of a class id under other spellings (compared lower-case, without _ - or spaces):
# classid, class_index, target, label_no, genre_code, cls ...
_CLASS_ID_NAME = re.compile(r"(class|label|target|category|genre|cls)(id|idx|index|num|number|no|nr|code)?"
                            r"|y|targetname")


def label_leaks(table: FeatureTable) -> dict[str, str]:
    """Feature columns that are the label in disguise, with why (empty when none).

    A column is the label in disguise when it is named like an id of the
    class (``target``, ``class_id``, ``label_idx``, ...), or when its values
    map one-to-one, or nearly (:data:`LEAK_PURITY` of the rows both ways),
    onto the classes: ESC-50's ``target``, UrbanSound8K's ``classID`` under
    another name. A feature that merely predicts the label well is not one
    to one: its values vary within a class (or are shared across classes).

    Examples
    --------
    >>> from pathlib import Path
    >>> df = pd.DataFrame({"label": list("aabbcc"), "code": [4, 4, 7, 7, 9, 9],
    ...                    "loud": [0.1, 0.2, 0.8, 0.9, 0.5, 0.4]})
    >>> t = FeatureTable(Path("t.csv"), df, ("code", "loud"), "test")
    >>> label_leaks(t)
    {'code': 'its values map one-to-one onto the classes (100% of the rows)'}
    """
    y = table.y
    n_classes = len(np.unique(y))
    found = {}
    for name in table.feature_columns:
        if _CLASS_ID_NAME.fullmatch(re.sub(r"[\s_\-]+", "", str(name).lower())):
            found[name] = "it is named like an id of the class"
            continue
        values = table.df[name].to_numpy()
        if len(pd.unique(values)) > 2 * n_classes:
            continue  # too many values to stand for the classes
        purity = min(_purity(values, y), _purity(y, values))
        if purity >= LEAK_PURITY:
            found[name] = f"its values map one-to-one onto the classes ({purity:.0%} of the rows)"
    return found


def _purity(keys: np.ndarray, values: np.ndarray) -> float:
    """Share of rows whose value is the most common one among the rows with their key."""
    counts = pd.crosstab(pd.Series(keys, dtype=object), pd.Series(values, dtype=object))
    return float(counts.max(axis=1).sum() / len(keys))

"""Which features matter: grouped permutation importance on out-of-fold predictions.

Columns are permuted in families (:mod:`features.families`: the same
families as the data dictionary's ``family`` column), because neighbouring
columns carry the same information (permuting one MFCC alone tells little
while its neighbours stay).

Nothing is refitted: in every held-out split, the model fitted on that
split's training rows predicts the split's test rows again with one family
shuffled across those rows (:func:`permuted_rows`), ``n_repeats`` times.
The importance of a family is how much the out-of-fold score drops,
pooled over all splits (:func:`importance_table`). A family the model
relies on drops the score; a useless one leaves it near zero (it can come
out slightly negative by chance).

``importance.csv`` (one row per model x family x class):

``model``
    Model name.
``family``
    Feature family (table above).
``n_columns``
    How many feature columns the family holds.
``class``
    A class label, or ``(all)`` for the whole test set.
``importance_mean``
    Score with the family intact minus score with it permuted, averaged
    over the repeats.
``importance_std``
    Standard deviation of that drop over the repeats.
``n_repeats``
    Permutations per family and split.
``metric``
    The score: ``accuracy`` for ``(all)``, ``recall`` (accuracy on the
    rows of that class) for a class; ``clip_accuracy`` / ``clip_recall``
    on a segment table, where windows are pooled per clip first.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from features.families import FAMILIES, family_of

from .evaluation import aggregate_clips

#: Permutations per family and split.
N_REPEATS = 5
#: The ``class`` value of the rows scoring the whole test set.
ALL_CLASSES = "(all)"
IMPORTANCE_COLUMNS = ("model", "family", "n_columns", "class", "importance_mean", "importance_std",
                      "n_repeats", "metric")

def feature_families(columns: Sequence[str]) -> dict[str, np.ndarray]:
    """Column positions of every family present, in :data:`FAMILIES` order.

    Examples
    --------
    >>> {k: v.tolist() for k, v in feature_families(["mfcc1", "rmse", "mfcc2"]).items()}
    {'mfcc_mean': [0, 2], 'rms': [1]}
    """
    found = np.array([family_of(c) for c in columns], dtype=object)
    return {name: np.flatnonzero(found == name) for name in FAMILIES if (found == name).any()}


def permuted_rows(
    X: np.ndarray, families: Sequence[np.ndarray], n_repeats: int, rng: np.random.Generator
) -> np.ndarray:
    """Copies of the test rows ``X``, one family shuffled across rows in each.

    Parameters
    ----------
    X : np.ndarray [shape=(n, n_features)]
        One split's test rows.
    families : sequence of np.ndarray
        Column positions of each family (:func:`feature_families`).
    n_repeats : int
        Shuffles per family.
    rng : np.random.Generator

    Returns
    -------
    np.ndarray [shape=(n_families * n_repeats * n, n_features)]
        Block ``(f, r)`` (rows ``(f * n_repeats + r) * n`` onwards) is ``X``
        with the columns of family ``f`` taken from the rows in a random
        order, the same order for all of them (so a row keeps a consistent,
        if foreign, set of values for that family).

    Examples
    --------
    >>> X = np.arange(6.0).reshape(3, 2)
    >>> out = permuted_rows(X, [np.array([1])], 1, np.random.default_rng(0))
    >>> out[:, 0].tolist(), sorted(out[:, 1].tolist())
    ([0.0, 2.0, 4.0], [1.0, 3.0, 5.0])
    """
    n = len(X)
    out = np.tile(X, (len(families) * n_repeats, 1))
    for f, cols in enumerate(families):
        for r in range(n_repeats):
            start = (f * n_repeats + r) * n
            out[start:start + n, cols] = X[rng.permutation(n)][:, cols]
    return out


def importance_table(
    model: str,
    y: np.ndarray,
    proba: np.ndarray,
    permuted: np.ndarray,
    families: dict[str, np.ndarray],
    classes: np.ndarray,
    *,
    clips: np.ndarray | None = None,
) -> pd.DataFrame:
    """Score drops per family, overall and per class, from pooled out-of-fold predictions.

    Parameters
    ----------
    model : str
    y : np.ndarray [shape=(n,)]
        True labels of the tested rows.
    proba : np.ndarray [shape=(n, n_classes)]
        Their out-of-fold probabilities (columns in ``classes`` order).
    permuted : np.ndarray [shape=(n_families, n_repeats, n, n_classes)]
        The same rows' probabilities with each family permuted.
    families : dict
        Family name to column positions, in the order of ``permuted``.
    classes : np.ndarray [shape=(n_classes,)]
    clips : np.ndarray [shape=(n,)] or None
        Each row's clip in a segment table: rows are pooled per clip (mean
        probability) before scoring.

    Returns
    -------
    pd.DataFrame
        Columns :data:`IMPORTANCE_COLUMNS`; per family, the ``(all)`` row
        first, then one row per class present in ``y``.
    """
    y = np.asarray(y, dtype=object)
    prefix = ""
    if clips is not None:
        _, proba, first, _ = aggregate_clips(clips, proba)
        y = y[first]
        permuted = np.stack([np.stack([aggregate_clips(clips, p)[1] for p in fam]) for fam in permuted])
        prefix = "clip_"
    present = [c for c in classes if (y == c).any()]
    base = _scores(y, classes[np.argmax(proba, axis=1)], present)
    n_repeats = permuted.shape[1]
    rows = []
    for (family, cols), fam in zip(families.items(), permuted):
        drops = np.array([base - _scores(y, classes[np.argmax(p, axis=1)], present) for p in fam])
        for j, label in enumerate([ALL_CLASSES, *present]):
            rows.append({
                "model": model, "family": family, "n_columns": len(cols), "class": label,
                "importance_mean": float(drops[:, j].mean()), "importance_std": float(drops[:, j].std()),
                "n_repeats": n_repeats, "metric": prefix + ("accuracy" if j == 0 else "recall"),
            })
    return pd.DataFrame(rows, columns=list(IMPORTANCE_COLUMNS))


def _scores(y: np.ndarray, predicted: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """Accuracy, then the recall of every class in ``classes``."""
    right = y == predicted
    return np.array([right.mean(), *(right[y == c].mean() for c in classes)])

"""Splits inside one training part: early stopping, probability calibration, the ``--tune`` search.

A model that splits its training part again must keep the outer
protocol's promise there too: a recording (group) or a predefined fold is
never on both sides of an inner split, or every choice made on it
(when to stop, how confident to be, which parameters) is optimistic.
:func:`validation_split`, :func:`calibration_folds` and
:func:`inner_splits` keep them whole, or say with a warning why they
cannot. Only rows of the training part are ever given, so the outer test
rows cannot reach them.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.model_selection import (
    GroupKFold,
    GroupShuffleSplit,
    ShuffleSplit,
    StratifiedGroupKFold,
    StratifiedKFold,
    StratifiedShuffleSplit,
)

from .errors import SplitError

__all__ = ["INNER_SPLITS", "calibration_folds", "inner_splits", "validation_split"]

#: Inner splits of a training part for the ``--tune`` search (fewer when
#: the part has fewer folds, groups or rows per class).
INNER_SPLITS = 2


def validation_split(
    y: np.ndarray, groups: np.ndarray | None, fraction: float, seed: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of one training part: (train, validation) for early stopping.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Labels of the training part.
    groups : np.ndarray [shape=(n,)] or None
        Recording of each row. With two groups or more, about ``fraction``
        of the groups is held out whole (:class:`GroupShuffleSplit`), so no
        recording sits on both sides; a class whose groups all fell in the
        validation part keeps them in training, or it would not be learnt.
        Without groups: a stratified shuffle split (plain when a class has a
        single row or the part is too small to hold a row of each class).
    fraction : float
        Share of the rows (or groups) to hold out, in (0, 1).
    seed : int or None
        Random state of the splitter.

    Returns
    -------
    train, validation : np.ndarray of int
        Row positions; ``validation`` may be empty when nothing can be held
        out (the caller then trains without early stopping).

    Examples
    --------
    >>> y = np.array(["a", "b"] * 10)
    >>> groups = np.repeat(np.arange(10), 2)
    >>> train, val = validation_split(y, groups, 0.2, seed=0)
    >>> set(groups[train]) & set(groups[val])
    set()
    """
    y = np.asarray(y)
    rows = np.arange(len(y))
    if groups is not None and len(np.unique(groups)) >= 2:
        groups = np.asarray(groups)
        train, val = next(GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
                          .split(rows, y, groups))
        lost = np.setdiff1d(y[val], y[train])
        if lost.size:
            back = np.isin(groups, groups[val][np.isin(y[val], lost)])
            train, val = rows[np.isin(rows, train) | back], rows[np.isin(rows, val) & ~back]
        return train, val
    counts = np.unique(y, return_counts=True)[1]
    stratify = counts.min() >= 2 and len(y) * fraction >= len(counts)
    splitter = (StratifiedShuffleSplit if stratify else ShuffleSplit)(
        n_splits=1, test_size=fraction, random_state=seed
    )
    return next(splitter.split(rows, y))


def calibration_folds(
    y: np.ndarray, groups: np.ndarray | None, n_splits: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Folds of one training part for cross-validated probability calibration.

    The calibrator learns from out-of-fold decision values, so a recording
    on both sides of a fold makes every confidence optimistic. With groups,
    :class:`StratifiedGroupKFold` keeps each group in one fold; without,
    :class:`StratifiedKFold`. The number of folds drops to what the rarest
    class allows (its groups, or its rows without groups), down to 2.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Labels of the training part.
    groups : np.ndarray [shape=(n,)] or None
        Recording of each row.
    n_splits : int
        Folds wanted.

    Returns
    -------
    list of (train, test)
        Row positions; every class is in every training side.

    Raises
    ------
    ValueError
        A class has a single row: it cannot be on both sides of any fold.

    Warns
    -----
    UserWarning
        When the groups cannot give every fold every class (a class has
        clips of a single recording): the folds then split rows, not groups.

    Examples
    --------
    >>> y = np.array(["a", "b"] * 6)
    >>> groups = np.repeat(np.arange(6), 2)
    >>> [sorted(int(g) for g in set(groups[test])) for _, test in calibration_folds(y, groups, 3)]
    [[0, 3], [1, 4], [2, 5]]
    """
    y = np.asarray(y)
    labels, counts = np.unique(y, return_counts=True)
    if counts.min() < 2:
        raise ValueError(
            f"class {str(labels[np.argmin(counts)])!r} has a single training row and the probability "
            "calibration needs two; add clips of rare classes or leave this model out"
        )
    rows = np.zeros(len(y))
    if groups is not None:
        groups = np.asarray(groups)
        per_class = pd.Series(groups).groupby(y).nunique()
        k = min(n_splits, int(per_class.min()))
        if k >= 2:
            folds = list(StratifiedGroupKFold(n_splits=k).split(rows, y, groups))
            if all(len(np.unique(y[train])) == len(labels) for train, _ in folds):
                return folds
        warnings.warn(
            f"calibration folds split clips of one recording: class(es) "
            f"{sorted(per_class[per_class < 2].index.tolist()) or 'all'} have too few recording "
            "groups in this training part to keep groups whole, so its confidences are optimistic",
            UserWarning, stacklevel=2,
        )
    k = min(n_splits, int(counts.min()))
    return list(StratifiedKFold(n_splits=k).split(rows, y))


def inner_splits(
    y: np.ndarray,
    *,
    folds: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    validation: np.ndarray | None = None,
    n_splits: int = INNER_SPLITS,
    seed: int = 0,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Splits of one training part for the ``--tune`` search, keeping whole what is given.

    Only the rows of the training part are given, so the outer test rows
    cannot reach the search. What is given decides, in this order
    (:meth:`classify.splits.Protocol.search_splits` gives each protocol's):

    ==============  ==========================================================
    given           inner splits
    ==============  ==========================================================
    ``validation``  one: fit on the other rows, score on the validation rows
    ``folds``       whole predefined folds held out (:class:`GroupKFold`),
                    when at least two remain
    ``groups``      :class:`StratifiedGroupKFold`: whole recordings (clips)
    neither         :class:`StratifiedKFold`
    ==============  ==========================================================

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Labels of the training part.
    folds : np.ndarray [shape=(n,)] or None
        Predefined fold of each row.
    groups : np.ndarray [shape=(n,)] or None
        Recording (or, in a segment table, clip) of each row.
    validation : np.ndarray [shape=(n,), dtype=bool] or None
        True for the rows of the part's validation part.
    n_splits : int
        Splits wanted; fewer when the part has fewer folds or groups, or a
        class fewer rows.
    seed : int
        Random state of the shuffling splitters.

    Returns
    -------
    list of (train, test)
        Row positions within the training part.

    Raises
    ------
    SplitError
        Fewer than two groups or rows per class to split on.

    Examples
    --------
    >>> y = np.array(["a", "b"] * 6)
    >>> folds = np.repeat([1, 2, 3], 4)
    >>> [sorted(set(folds[test].tolist())) for _, test in inner_splits(y, folds=folds)]
    [[1, 3], [2]]
    """
    y = np.asarray(y)
    rows = np.zeros(len(y))
    if validation is not None and np.any(validation):
        validation = np.asarray(validation, dtype=bool)
        return [(np.flatnonzero(~validation), np.flatnonzero(validation))]
    if folds is not None and len(pd.unique(folds)) >= 2:
        k = min(n_splits, len(pd.unique(folds)))
        return list(GroupKFold(n_splits=k).split(rows, y, np.asarray(folds)))
    if groups is not None:
        groups = np.asarray(groups)
        k = min(n_splits, len(np.unique(groups)))
        if k < 2:
            raise SplitError("the --tune search needs at least two groups in every training "
                             "part to hold one out; run without --tune")
        return list(StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
                    .split(rows, y, groups))
    k = min(n_splits, int(np.unique(y, return_counts=True)[1].max()))
    if k < 2:
        raise SplitError("the --tune search needs two rows of a class in every training part; "
                         "run without --tune")
    with warnings.catch_warnings():
        # A class rarer than k is absent from some inner test parts: still a valid split.
        warnings.simplefilter("ignore", UserWarning)
        return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(rows, y))

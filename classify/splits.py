"""Which rows train and which test: the evaluation protocol.

The protocol decides whether the scores mean anything. Clips cut from one
recording sound alike, so a model that saw one of them in training "knows"
the others; only a split that keeps each recording (``group``) or each
predefined ``fold`` on one side gives honest numbers.

``auto`` picks, in order: the dataset's own train/validation/test parts
(``holdout``, from a ``split`` column, as Speech Commands ships them), the
table's predefined folds (the official UrbanSound8K protocol), stratified
group k-fold on ``group``, plain stratified k-fold. ``random`` (the
tutorials' shuffled 80/20 hold-out) is never chosen automatically and is
labelled leaky wherever it is reported. All splitting is done by
scikit-learn's splitters.

``holdout`` fits on the ``train`` rows, makes every choice on the
``validation`` rows (early stopping of the MLP and HGB, the ``--tune``
search) and reports on the ``test`` rows only. Every row must be in one
of the three parts, or ``excluded`` when the dataset's own split leaves it
out (GTZAN's faulty excerpts under its fault-filtered split): such a row is
in no part and not in the final fit, and the protocol says how many there
are. A row with an empty or other value is refused with a message naming
it (no row is dropped silently).

In a segment table (one row per window of a clip, see
:mod:`classify.tables`) every protocol but ``random`` keeps the windows of
a clip on one side: they share the clip's fold, group and part, and
``stratified`` becomes stratified *group* k-fold over clips.

The same care applies inside a training part, where some models split
again (early stopping, probability calibration, the ``--tune`` search):
:func:`validation_split`, :func:`calibration_folds` and
:func:`inner_splits` keep every group on one side there too, or say with a
warning why they cannot.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sklearn.model_selection import (
    PredefinedSplit,
    StratifiedGroupKFold,
    StratifiedKFold,
    StratifiedShuffleSplit,
)

from .errors import SplitError, UsageError
from .inner import inner_splits
from .tables import FeatureTable

PROTOCOLS = ("auto", "holdout", "folds", "group", "stratified", "random")
LEAKY_NOTE = "leaky: clips of one recording can sit on both sides"
RANDOM_TEST_SIZE = 0.2
#: The values of a ``split`` column, in the order they are used.
HOLDOUT_PARTS = ("train", "validation", "test")
#: A ``split`` value for a row the dataset's own split leaves out of every part.
EXCLUDED_PART = "excluded"


class Split(NamedTuple):
    """One train/test split: row indices, the name of the held-out part and its fold.

    ``fold`` is the predefined fold held out (a value of the table's ``fold``
    column) for the ``folds`` protocol, None for the others. ``validation``
    holds the rows on which ``holdout`` makes its choices (never trained
    on, never scored); None for the other protocols, whose models carve
    their validation parts out of ``train``.
    """

    train: np.ndarray
    test: np.ndarray
    name: str
    fold: Any = None
    validation: np.ndarray | None = None


@dataclasses.dataclass(frozen=True, eq=False)
class Protocol:
    """An evaluation protocol and its splits.

    Attributes
    ----------
    name : str
        ``holdout``, ``folds``, ``group``, ``stratified`` or ``random``.
    reason : str
        One sentence saying why this protocol was used.
    leaky : bool
        True for ``random``: clips of one recording can be on both sides.
    splits : tuple of Split
        ``(train_idx, test_idx, name, fold)`` per split, indices into the table rows.
    warnings : tuple of str
        Things the user should know that do not stop the run (a class absent
        from a training part, groups spread over several folds).
    y : np.ndarray or None
        The label of every row (the inner splits stratify on it).
    recordings : np.ndarray or None
        The recording of every row, a row without one being its own; the
        models split their training parts again by it (early stopping,
        calibration: :func:`classify.models.group_fit_params`). None when
        the table names no groups.
    excluded : np.ndarray or None
        Rows in no part and not in the final fit (``holdout``: the rows
        whose ``split`` is ``excluded``); None when every row is used.
    inner_folds, inner_groups : np.ndarray or None
        What the ``--tune`` search and ``--select nested`` keep whole inside
        a training part, by this protocol's rules
        (:meth:`search_splits`): the predefined folds under ``folds``; the
        recordings under ``folds``, ``holdout`` and ``group``; the clips of
        a segment table under ``stratified``; nothing under ``random``.
    """

    name: str
    reason: str
    leaky: bool
    splits: tuple[Split, ...]
    warnings: tuple[str, ...] = ()
    y: np.ndarray | None = None
    recordings: np.ndarray | None = None
    inner_folds: np.ndarray | None = None
    inner_groups: np.ndarray | None = None
    excluded: np.ndarray | None = None

    @property
    def n_splits(self) -> int:
        return len(self.splits)

    @property
    def label(self) -> str:
        """``folds`` or ``random (leaky: ...)``: the name as printed in outputs."""
        return f"{self.name} ({LEAKY_NOTE})" if self.leaky else self.name

    def describe(self) -> str:
        """One line for the console: protocol, number of splits and why."""
        return f"protocol: {self.label}, {self.n_splits} split(s); {self.reason}"

    @property
    def validation(self) -> np.ndarray | None:
        """The rows of the dataset's own validation part (``holdout``), or None if it has none."""
        rows = self.splits[0].validation if self.splits else None
        return rows if rows is not None and len(rows) else None

    @property
    def has_validation(self) -> bool:
        """Whether choices are made on a validation part that is never trained on nor scored."""
        return self.validation is not None

    @property
    def selection_rule(self) -> str:
        """How the leaderboard's best model is chosen under this protocol (one phrase)."""
        if self.has_validation:
            return ("the best validation accuracy (the dataset's validation part); the test part "
                    "is used once, to report")
        if self.name == "holdout":
            return "the best test accuracy: the table has no validation rows"
        if self.leaky:
            return "the best mean accuracy"
        return "the best mean accuracy over the same splits"

    def search_splits(self, train: np.ndarray, validation: np.ndarray | None = None, *,
                      seed: int = 0) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
        """The rows a choice inside a training part may see, and its inner splits.

        Used by the ``--tune`` search and by ``--select nested``: whole
        folds, recordings or clips are kept on one side, as the outer
        splits keep them (see :attr:`inner_folds`); with a validation part
        the one inner split scores on it.

        Parameters
        ----------
        train : np.ndarray of int
            Training rows of a split (or every row but the validation
            part's, for the final model).
        validation : np.ndarray of int or None
            The validation rows, given under ``holdout``.
        seed : int
            Random state of the shuffling splitters.

        Returns
        -------
        rows : np.ndarray of int
            ``train`` (then ``validation``).
        cv : list of (train, test)
            Positions into ``rows`` (:func:`classify.inner.inner_splits`).

        Raises
        ------
        SplitError
            The training part has too few folds, groups or rows to split.
        """
        if self.y is None:
            raise SplitError("this protocol was built without labels; build it with "
                             "build_protocol or choose_protocol")
        train = np.asarray(train, dtype=int)
        if validation is not None and len(validation):
            rows = np.concatenate([train, validation])
            mask = np.r_[np.zeros(len(train), bool), np.ones(len(validation), bool)]
            return rows, inner_splits(self.y[rows], validation=mask)
        try:
            cv = inner_splits(
                self.y[train], seed=seed,
                folds=None if self.inner_folds is None else self.inner_folds[train],
                groups=None if self.inner_groups is None else self.inner_groups[train])
        except SplitError as exc:
            raise SplitError(f"{exc} (training part of {len(train)} rows)") from None
        return train, cv

    def final_rows(self, n_rows: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The rows the final model is fitted on, and the validation part it chooses on (or None)."""
        validation = self.validation
        left_out = [*([] if validation is None else validation),
                    *([] if self.excluded is None else self.excluded)]
        train = np.setdiff1d(np.arange(n_rows), np.asarray(left_out, dtype=np.intp))
        return train, validation

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the indices); ``holdout`` adds its part sizes."""
        summary = {
            "name": self.name, "reason": self.reason, "leaky": self.leaky,
            "n_splits": self.n_splits, "split_names": [s.name for s in self.splits],
            "warnings": list(self.warnings),
        }
        if self.name == "holdout":
            split = self.splits[0]
            summary["rows"] = {"train": len(split.train), "test": len(split.test),
                               "validation": 0 if split.validation is None else len(split.validation)}
            if self.excluded is not None:
                summary["rows"]["excluded"] = len(self.excluded)
        return summary


def choose_protocol(table: FeatureTable, cv: str = "auto", *, k: int = 5, seed: int = 0) -> Protocol:
    """Build the protocol ``cv`` for a loaded table.

    Parameters
    ----------
    table : FeatureTable
        Supplies labels and the ``split``, ``fold`` and ``group`` columns
        (and, in a segment table, each window's clip).
    cv : {"auto", "holdout", "folds", "group", "stratified", "random"}
        Protocol; ``auto`` picks holdout, else folds, else group, else
        stratified.
    k : int
        Number of splits for ``group`` and ``stratified``.
    seed : int
        Seed of the shuffling splitters.

    Returns
    -------
    Protocol

    Raises
    ------
    SplitError
        The needed column is missing or incomplete, a class is rarer than
        the number of splits, or a split would have no training data.
    """
    folds = table.df[table.fold_col] if table.fold_col else None
    return build_protocol(cv, table.y, folds=folds, groups=table.groups, parts=table.parts,
                          clips=table.clips, k=k, seed=seed)


def build_protocol(
    cv: str,
    y: np.ndarray,
    *,
    folds: pd.Series | np.ndarray | None = None,
    groups: np.ndarray | None = None,
    parts: np.ndarray | None = None,
    clips: np.ndarray | None = None,
    k: int = 5,
    seed: int = 0,
) -> Protocol:
    """Build a protocol from plain arrays (see :func:`choose_protocol`).

    Parameters
    ----------
    cv : str
        One of :data:`PROTOCOLS`.
    y : np.ndarray [shape=(n,)]
        Class labels.
    folds : array-like [shape=(n,)] or None
        Predefined fold of each row (NA where unknown), or None.
    groups : np.ndarray [shape=(n,)] or None
        Group (recording) of each row, ``""`` where unknown, or None.
    parts : np.ndarray [shape=(n,)] or None
        ``train`` / ``validation`` / ``test`` per row (the ``split``
        column, lower-case), ``""`` where unknown, or None.
    clips : np.ndarray [shape=(n,)] or None
        In a segment table, the clip of each window: ``stratified`` then
        keeps a clip's windows together. None for a table of whole clips.
    k : int
        Number of splits for ``group`` / ``stratified``.
    seed : int
        Seed of the shuffling splitters.

    Returns
    -------
    Protocol

    Examples
    --------
    >>> y = np.array(["a", "b"] * 10)
    >>> p = build_protocol("auto", y, k=2)
    >>> p.name, p.n_splits, p.leaky
    ('stratified', 2, False)
    """
    if cv not in PROTOCOLS:
        raise UsageError(f"--cv {cv!r} is not one of: {', '.join(PROTOCOLS)}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise UsageError(f"--k {k!r} must be an integer >= 2")
    y = np.asarray(y, dtype=object)
    folds = None if folds is None else pd.Series(np.asarray(folds, dtype=object))
    if folds is not None and folds.isna().all():
        folds = None
    if groups is not None and (np.asarray(groups, dtype=str) == "").all():
        groups = None
    if parts is not None and (np.asarray(parts, dtype=str) == "").all():
        parts = None
    name = cv
    if cv == "auto":
        name = ("holdout" if parts is not None else "folds" if folds is not None
                else "group" if groups is not None else "stratified")
    if name == "holdout":
        splits = [_holdout(y, parts, auto=cv == "auto")]
    elif name == "folds":
        splits = _predefined(y, folds)
    elif name == "group":
        splits = _grouped(y, groups, k, seed)
    elif name == "stratified" and clips is not None:
        splits = _clip_stratified(y, clips, k, seed)
    elif name == "stratified":
        splits = _stratified(y, k, seed)
    else:
        splits = _random(y, seed)
    _check_training_parts(y, splits)
    reason = _reason(cv, name, folds, groups, k, parts=parts, segmented=clips is not None)
    notes = (_absent_classes(y, splits) + _groups_across_folds(name, folds, groups)
             + _holdout_notes(name, splits, groups))
    recordings = own_group_if_blank(groups)
    inner_groups = {"folds": recordings, "holdout": recordings, "group": recordings,
                    "stratified": None if clips is None else np.asarray(clips, dtype=str),
                    "random": None}[name]
    return Protocol(
        name=name, reason=reason, leaky=name == "random", splits=tuple(splits),
        warnings=tuple(notes), y=y, recordings=recordings,
        inner_folds=folds.to_numpy(dtype=object) if name == "folds" else None,
        inner_groups=inner_groups,
        excluded=_excluded_rows(name, parts),
    )


def _excluded_rows(name: str, parts: np.ndarray | None) -> np.ndarray | None:
    if name != "holdout" or parts is None:
        return None
    rows = np.flatnonzero(np.asarray(parts, dtype=object) == EXCLUDED_PART)
    return rows if rows.size else None


def own_group_if_blank(groups: np.ndarray | None) -> np.ndarray | None:
    """Each row's group as text, a row without one (``""``) being a group of its own.

    >>> own_group_if_blank(np.array(["r1", "", "r1"])).tolist()
    ['r1', '\\x00row1', 'r1']
    """
    if groups is None:
        return None
    groups = np.asarray(groups, dtype=str).astype(object)
    blank = groups == ""
    groups[blank] = [f"\0row{i}" for i in np.flatnonzero(blank)]
    return groups


def _reason(cv: str, name: str, folds: pd.Series | None, groups: np.ndarray | None, k: int, *,
            parts: np.ndarray | None = None, segmented: bool = False) -> str:
    if name == "random":
        return (
            f"requested with --cv random: one shuffled, stratified "
            f"{100 - RANDOM_TEST_SIZE * 100:.0f}/{RANDOM_TEST_SIZE * 100:.0f} hold-out as in "
            f"the tutorials; {LEAKY_NOTE}"
            + (" (and windows of one clip are split apart)" if segmented else "")
            + ", so its scores are optimistic"
        )
    how = f"requested with --cv {cv}" if cv != "auto" else None
    if name == "holdout":
        counts = ", ".join(f"{int((parts == p).sum())} {p}" for p in (*HOLDOUT_PARTS, EXCLUDED_PART)
                           if p != EXCLUDED_PART or (parts == p).any())
        left_out = int((np.asarray(parts, dtype=object) == EXCLUDED_PART).sum())
        return (how or f"the table has a 'split' column ({counts} rows)") + (
            ": the dataset's own parts; fit on train, choose on validation (early stopping, "
            "tuning), score on test"
        ) + (f"; the {left_out} excluded row(s) are in no part and not in the final fit"
             if left_out else "")
    if name == "folds":
        n = folds.dropna().nunique()
        return (how or f"the table has a 'fold' column with {n} predefined folds") + (
            ": each fold is held out once and trained on the others (the dataset's own "
            "protocol, as for UrbanSound8K), so no fold is on both sides"
        )
    if name == "group":
        n = len(set(groups) - {""}) if groups is not None else 0
        what = f"a 'group' column ({n} groups)"
        if segmented:
            what = f"{n} groups (the 'group' column, else each window's clip)"
        return (how or f"the table has no folds but {what}") + (
            f": stratified group {k}-fold keeps every group (recording) on one side"
        )
    if segmented:
        return (how or "the table has neither a 'fold' nor a 'group' column") + (
            f": stratified group {k}-fold over clips keeps the windows of a clip on one side"
        )
    return (how or "the table has neither a 'fold' nor a 'group' column") + (
        f": stratified {k}-fold, which assumes the rows are independent clips"
    )


# ---------------------------------------------------------------- splitters


def _predefined(y: np.ndarray, folds: pd.Series | None) -> list[Split]:
    if folds is None:
        raise SplitError(
            "--cv folds needs a 'fold' column with values, and the table has none; "
            "use --cv group or --cv stratified"
        )
    missing = folds.isna().to_numpy()
    if missing.any():
        raise SplitError(
            f"{int(missing.sum())} row(s) have no fold (first at data row "
            f"{int(np.argmax(missing)) + 1}); fill the 'fold' column for every row or use "
            "--cv group / --cv stratified"
        )
    values = sorted(folds.unique(), key=_fold_order)
    if len(values) < 2:
        raise SplitError(
            f"the table has a single fold ({values[0]}): holding it out leaves a split "
            "without training data; use --cv group or --cv stratified"
        )
    _check_classes_span_folds(y, folds)
    codes = folds.map({v: i for i, v in enumerate(values)}).to_numpy(dtype=int)
    splitter = PredefinedSplit(test_fold=codes)
    return [
        Split(train, test, f"fold{values[i]}", values[i])
        for i, (train, test) in enumerate(splitter.split())
    ]


def _grouped(y: np.ndarray, groups: np.ndarray | None, k: int, seed: int) -> list[Split]:
    if groups is None:
        raise SplitError(
            "--cv group needs a 'group' column naming each clip's recording, and the "
            "table has none; use --cv stratified (or --cv folds if it has folds)"
        )
    groups = np.asarray(groups, dtype=str)
    blank = groups == ""
    if blank.any():
        raise SplitError(
            f"{int(blank.sum())} row(s) have no group (first at data row "
            f"{int(np.argmax(blank)) + 1}); fill the 'group' column for every row or use "
            "--cv stratified"
        )
    n_groups = len(np.unique(groups))
    if n_groups < k:
        raise SplitError(
            f"--cv group with --k {k} needs at least {k} groups, and the table has "
            f"{n_groups}; use a smaller --k"
        )
    _check_class_sizes(y, k, "group")
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return _named(splitter.split(np.zeros(len(y)), y, groups))


def _holdout(y: np.ndarray, parts: np.ndarray | None, *, auto: bool) -> Split:
    if parts is None:
        raise SplitError(
            "--cv holdout needs a 'split' column with train, validation and test rows, and the "
            "table has none; use --cv folds, group or stratified"
        )
    parts = np.asarray(parts, dtype=object)
    bad = ~np.isin(parts, (*HOLDOUT_PARTS, EXCLUDED_PART))
    if bad.any():
        first = int(np.argmax(bad))
        found = sorted({str(v) for v in parts[bad]})[:5]
        fix = ("or choose another protocol with --cv folds, group or stratified "
               "(the 'split' column is then ignored)")
        raise SplitError(
            f"{'the table has a split column, so --cv auto chose holdout, but ' if auto else ''}"
            f"{int(bad.sum())} row(s) have a 'split' value that is not one of "
            f"{', '.join(HOLDOUT_PARTS)} or {EXCLUDED_PART} (first at data row {first + 1}; values {found}, "
            f"'' = empty); give every row its part, {fix}"
        )
    train, validation, test = (np.flatnonzero(parts == p) for p in HOLDOUT_PARTS)
    for rows, part in ((train, "train"), (test, "test")):
        if len(rows) == 0:
            raise SplitError(f"--cv holdout needs rows with split '{part}', and the table has "
                             "none; fix the 'split' column or use --cv folds, group or stratified")
    return Split(train, test, "holdout", None, validation)


def _clip_stratified(y: np.ndarray, clips: np.ndarray, k: int, seed: int) -> list[Split]:
    clips = np.asarray(clips, dtype=str)
    n_clips = len(np.unique(clips))
    if n_clips < k:
        raise SplitError(f"--cv stratified with --k {k} needs at least {k} clips, and the "
                         f"table has {n_clips}; use a smaller --k")
    per_class = pd.Series(clips).groupby(y).nunique()
    rare = per_class[per_class < k]
    if len(rare):
        shown = ", ".join(f"{label!r} ({n} clip{'s' if n != 1 else ''})" for label, n in rare.items())
        raise SplitError(f"--cv stratified needs at least {k} clips of every class, and "
                         f"class(es) {shown} have fewer; use a smaller --k or add clips")
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return _named(splitter.split(np.zeros(len(y)), y, clips))


def _stratified(y: np.ndarray, k: int, seed: int) -> list[Split]:
    _check_class_sizes(y, k, "stratified")
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return _named(splitter.split(np.zeros(len(y)), y))


def _random(y: np.ndarray, seed: int) -> list[Split]:
    _check_class_sizes(y, 2, "random")
    n_classes = len(np.unique(y))
    n_test = math.ceil(RANDOM_TEST_SIZE * len(y))
    if n_test < n_classes or len(y) - n_test < n_classes:
        raise SplitError(
            f"--cv random holds out {n_test} of {len(y)} rows, too few for one row of "
            f"each of the {n_classes} classes on both sides; add clips"
        )
    splitter = StratifiedShuffleSplit(n_splits=1, test_size=RANDOM_TEST_SIZE, random_state=seed)
    train, test = next(splitter.split(np.zeros(len(y)), y))
    return [Split(train, test, "holdout (leaky)")]


def _named(pairs) -> list[Split]:
    return [Split(train, test, f"split{i + 1}") for i, (train, test) in enumerate(pairs)]


def _fold_order(value: Any) -> tuple[int, Any]:
    # Whole-number folds sort numerically (fold2 before fold10), others as text.
    if isinstance(value, (int, np.integer)):
        return 0, int(value)
    return 1, str(value)


# ------------------------------------------------------------------- checks


def _check_class_sizes(y: np.ndarray, n_splits: int, cv: str) -> None:
    labels, counts = np.unique(y, return_counts=True)
    rare = [(lab, n) for lab, n in zip(labels, counts) if n < n_splits]
    if rare:
        shown = ", ".join(f"{lab!r} ({n} row{'s' if n != 1 else ''})" for lab, n in rare[:5])
        fix = {"random": "", "folds": "use --cv stratified with a smaller --k or "}.get(
            cv, "use a smaller --k or ")
        raise SplitError(
            f"--cv {cv} needs at least {n_splits} rows of every class, and class(es) "
            f"{shown} have fewer; {fix}add clips of those classes"
        )


def _check_classes_span_folds(y: np.ndarray, folds: pd.Series) -> None:
    # A class seen in one fold only is never trained on when that fold is held
    # out and never tested otherwise: its scores would mean nothing.
    spread = pd.DataFrame({"label": y, "fold": folds.to_numpy()}).groupby("label")["fold"].unique()
    single = [(label, found[0]) for label, found in spread.items() if len(found) < 2]
    if single:
        shown = ", ".join(f"{label!r} (only in fold {fold})" for label, fold in single[:5])
        raise SplitError(
            f"--cv folds needs every class in at least two folds, and class(es) {shown} are not; "
            "add clips of those classes to other folds, or use --cv group or --cv stratified"
        )


def _check_training_parts(y: np.ndarray, splits: list[Split]) -> None:
    for split in splits:
        if len(split.train) == 0 or len(split.test) == 0:
            side = "training" if len(split.train) == 0 else "test"
            raise SplitError(f"split {split.name} has no {side} data; check the 'fold' column")
        present = np.unique(y[split.train])
        if len(present) < 2:
            raise SplitError(
                f"the training part of {split.name} holds only the class {present[0]!r}; "
                "every split needs at least two classes to train on"
            )


def _absent_classes(y: np.ndarray, splits: list[Split]) -> list[str]:
    classes = set(np.unique(y))
    notes = []
    for split in splits:
        absent = sorted(classes - set(y[split.train]))
        if absent:
            notes.append(
                f"class(es) {absent} have no training rows in {split.name}, so that split "
                "cannot predict them"
            )
    return notes


def _holdout_notes(name: str, splits: list[Split], groups: np.ndarray | None) -> list[str]:
    if name != "holdout":
        return []
    split = splits[0]
    notes = []
    if split.validation is None or len(split.validation) == 0:
        notes.append("the table has no 'validation' rows: early stopping and tuning use an "
                     "inner split of the train rows instead")
    if groups is not None:
        groups = np.asarray(groups, dtype=str)
        sides = [set(groups[rows]) - {""} for rows in (split.train, split.validation, split.test)
                 if rows is not None]
        shared = set.union(*(a & b for i, a in enumerate(sides) for b in sides[i + 1:]))
        if shared:
            notes.append(f"{len(shared)} group(s) have rows in more than one of train, validation "
                         "and test, so those recordings sit on both sides; the parts leak for them")
    return notes


def _groups_across_folds(name: str, folds: pd.Series | None, groups: np.ndarray | None) -> list[str]:
    if name != "folds" or groups is None:
        return []
    frame = pd.DataFrame({"fold": folds.to_numpy(), "group": np.asarray(groups, dtype=str)})
    frame = frame[frame["group"] != ""]
    spread = int((frame.groupby("group")["fold"].nunique() > 1).sum())
    if not spread:
        return []
    note = (
        f"{spread} group(s) have clips in more than one fold, so those recordings sit on "
        "both sides of some splits; the predefined folds leak for them"
    )
    return [note]

"""Scores from predictions: per split, per class, confusion matrices, leaderboard.

Pure computation on labels and probabilities; nothing here fits a model,
reads a file or draws.

On a segment table (one row per window of a clip) a clip's prediction is
the class of highest mean probability over its windows
(:func:`aggregate_clips`). The scores of such a run are per clip
(``accuracy``, ``balanced_accuracy``, ``macro_f1``, the per-class scores
and confusion matrices), with the per-window accuracy beside them in
``window_accuracy`` (:data:`SEGMENT_FOLDS_COLUMNS`,
:data:`SEGMENT_LEADERBOARD_COLUMNS`).
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

SPLIT_METRICS = ("accuracy", "balanced_accuracy", "macro_f1")
LEADERBOARD_COLUMNS = (
    "model", "accuracy_mean", "accuracy_std", "balanced_accuracy_mean", "macro_f1_mean",
    "fit_seconds",
)
FOLDS_COLUMNS = (
    "model", "split", "fold", "n_train", "n_test", "accuracy", "balanced_accuracy", "macro_f1",
    "fit_seconds",
)
PER_CLASS_COLUMNS = ("model", "class", "precision", "recall", "f1", "support")
#: The leaderboard and per-split columns of a run on a segment table: the
#: scores above are per clip, ``window_accuracy`` per window, ``n_train``
#: and ``n_test`` count windows, ``n_test_clips`` clips.
SEGMENT_LEADERBOARD_COLUMNS = (
    "model", "accuracy_mean", "accuracy_std", "window_accuracy_mean", "balanced_accuracy_mean",
    "macro_f1_mean", "fit_seconds",
)
SEGMENT_FOLDS_COLUMNS = (
    "model", "split", "fold", "n_train", "n_test", "n_test_clips", "accuracy", "window_accuracy",
    "balanced_accuracy", "macro_f1", "fit_seconds",
)


def aggregate_clips(
    clips: np.ndarray, proba: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pool window probabilities per clip: the mean over each clip's windows.

    Parameters
    ----------
    clips : np.ndarray [shape=(n_windows,)]
        The clip (path) of every window.
    proba : np.ndarray [shape=(n_windows, n_classes)]

    Returns
    -------
    ids : np.ndarray [shape=(n_clips,)]
        Clips in order of first appearance.
    mean : np.ndarray [shape=(n_clips, n_classes)]
        Mean probability of each class over the clip's windows; its
        argmax is the clip's prediction.
    first : np.ndarray [shape=(n_clips,)]
        Row of each clip's first window (to read its label, fold, ...).
    counts : np.ndarray [shape=(n_clips,)]
        Windows per clip.

    Examples
    --------
    >>> ids, mean, first, counts = aggregate_clips(
    ...     np.array(["a", "b", "a"]), np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]]))
    >>> ids.tolist(), mean.round(2).tolist(), first.tolist(), counts.tolist()
    (['a', 'b'], [[0.6, 0.4], [0.2, 0.8]], [0, 1], [2, 1])
    """
    codes, ids = pd.factorize(np.asarray(clips, dtype=object))
    counts = np.bincount(codes, minlength=len(ids))
    sums = np.zeros((len(ids), proba.shape[1]))
    np.add.at(sums, codes, proba)
    first = np.full(len(ids), len(codes))
    np.minimum.at(first, codes, np.arange(len(codes)))
    return np.asarray(ids, dtype=object), sums / counts[:, None], first, counts


def split_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Accuracy, balanced accuracy and macro F1 of one held-out split.

    Parameters
    ----------
    y_true, y_pred : np.ndarray [shape=(n,)]
        True and predicted labels of the split's test rows.

    Returns
    -------
    dict
        Keys :data:`SPLIT_METRICS`.

    Examples
    --------
    >>> split_scores(np.array(["a", "a", "b"]), np.array(["a", "b", "b"]))["accuracy"]
    0.6666666666666666
    """
    with warnings.catch_warnings():
        # A fold may lack a class that the model still predicts; the
        # scores are right, the warning would only be noise.
        warnings.simplefilter("ignore", UserWarning)
        return {
            "accuracy": float(accuracy_score(y_true, y_pred)),
            "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        }


def per_class_scores(
    model: str, y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]
) -> pd.DataFrame:
    """Precision, recall, F1 and support of every class from out-of-fold predictions.

    Returns
    -------
    pd.DataFrame [shape=(n_classes, 6)]
        Columns :data:`PER_CLASS_COLUMNS`, one row per class in ``classes`` order.
    """
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=list(classes), zero_division=0
    )
    return pd.DataFrame(
        {"model": model, "class": list(classes), "precision": precision, "recall": recall,
         "f1": f1, "support": support.astype(int)},
        columns=list(PER_CLASS_COLUMNS),
    )


def confusion_tables(
    y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Confusion matrix as counts and row-normalised (each true class sums to 1).

    Returns
    -------
    counts, normalized : pd.DataFrame [shape=(n_classes, n_classes)]
        Rows are true classes (index name ``true_label``), columns predicted
        classes (``predicted_label``). A class without test rows has a row of 0.
    """
    classes = list(classes)
    counts = confusion_matrix(y_true, y_pred, labels=classes)
    totals = counts.sum(axis=1, keepdims=True)
    normalized = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    frame = {
        "counts": pd.DataFrame(counts, index=classes, columns=classes),
        "normalized": pd.DataFrame(normalized, index=classes, columns=classes),
    }
    for df in frame.values():
        df.index.name, df.columns.name = "true_label", "predicted_label"
    return frame["counts"], frame["normalized"]


def leaderboard(folds: pd.DataFrame) -> pd.DataFrame:
    """One row per model, best first.

    Parameters
    ----------
    folds : pd.DataFrame
        Per-split rows with :data:`FOLDS_COLUMNS` (or
        :data:`SEGMENT_FOLDS_COLUMNS`), and ``validation_accuracy`` under
        the ``holdout`` protocol.

    Returns
    -------
    pd.DataFrame
        Columns :data:`LEADERBOARD_COLUMNS` (with ``window_accuracy`` in
        the folds: :data:`SEGMENT_LEADERBOARD_COLUMNS`). With
        ``validation_accuracy`` in the folds (``holdout``), that column
        follows ``model`` and ranks the models: the test part never takes
        part in a choice. Otherwise sorted by ``accuracy_mean`` (then
        balanced accuracy, then name) descending. ``accuracy_std`` is the
        spread over splits (0 for a single split); ``fit_seconds`` the total
        fitting time over all splits.
    """
    grouped = folds.groupby("model", sort=False)
    board = pd.DataFrame(
        {
            "accuracy_mean": grouped["accuracy"].mean(),
            "accuracy_std": grouped["accuracy"].std(ddof=0),
            "balanced_accuracy_mean": grouped["balanced_accuracy"].mean(),
            "macro_f1_mean": grouped["macro_f1"].mean(),
            "fit_seconds": grouped["fit_seconds"].sum(),
        }
    ).reset_index()
    columns = list(LEADERBOARD_COLUMNS)
    if "window_accuracy" in folds.columns:
        board["window_accuracy_mean"] = grouped["window_accuracy"].mean().to_numpy()
        columns = list(SEGMENT_LEADERBOARD_COLUMNS)
    rank = ["accuracy_mean", "balanced_accuracy_mean"]
    if "validation_accuracy" in folds.columns:
        board["validation_accuracy"] = grouped["validation_accuracy"].mean().to_numpy()
        columns.insert(1, "validation_accuracy")
        rank = ["validation_accuracy", *rank]
    board = board.sort_values([*rank, "model"], ascending=[False] * len(rank) + [True],
                              kind="stable")
    return board[columns].reset_index(drop=True)

"""What a training run produced: one model's cross-validation, and the whole run.

:class:`CVResult` and :class:`TrainResult` are plain records: the steps of
:mod:`classify.training` fill them, :mod:`classify.record` writes them.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .options import TrainOptions
from .rundir import NESTED
from .splits import Protocol
from .table_patches import TablePatches
from .tables import FeatureTable

__all__ = ["CVResult", "TrainResult"]


@dataclasses.dataclass
class CVResult:
    """One model's cross-validation.

    Attributes
    ----------
    model : str
    folds : pd.DataFrame
        One row per split, columns :data:`classify.evaluation.FOLDS_COLUMNS`.
    predicted : np.ndarray [shape=(n_rows,), dtype=object]
        Out-of-fold label of every row; None for rows never tested
        (``random`` protocol).
    proba : np.ndarray [shape=(n_rows, n_classes)]
        Out-of-fold probabilities in table class order; NaN where untested.
    split_of_row : np.ndarray [shape=(n_rows,), dtype=object]
        Name of the split that tested each row, None if none did.
    fit_seconds, predict_seconds : float
        Totals over the splits (``fit_seconds`` includes the ``--tune`` search).
    importance : pd.DataFrame or None
        :func:`classify.importance.importance_table` of the model; None
        without ``importance``.
    importance_seconds : float
        Total time of the permuted predictions.
    params : list of dict or None
        With ``--tune``, the parameters chosen in each split, in split order.
    failed_candidates : dict or None
        With ``--tune``, split name -> candidates of its search whose fit failed.
    restarts : dict
        Split name -> the fit attempts of a Keras model whose first fit stayed
        at chance (:meth:`classify.keras_base.KerasClassifier._fit_guarded`);
        empty when none did.
    """

    model: str
    folds: pd.DataFrame
    predicted: np.ndarray
    proba: np.ndarray
    split_of_row: np.ndarray
    fit_seconds: float
    predict_seconds: float
    importance: pd.DataFrame | None = None
    importance_seconds: float = 0.0
    params: list[dict[str, Any]] | None = None
    failed_candidates: dict[str, int] | None = None
    restarts: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)

    @property
    def tested(self) -> np.ndarray:
        """Boolean mask of the rows that have an out-of-fold prediction."""
        return np.array([s is not None for s in self.split_of_row], dtype=bool)


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` produced (all of it also written to ``out_dir``).

    ``write_dir`` is where the files are written while the run is made (a
    staging folder inside ``out_dir``, moved into place as a set at the
    end); None: ``out_dir`` itself.
    """

    out_dir: Path
    table: FeatureTable
    protocol: Protocol
    options: TrainOptions
    results: dict[str, CVResult]
    leaderboard: pd.DataFrame
    folds: pd.DataFrame
    per_class: pd.DataFrame
    final_model: str
    bundle_dir: Path | None
    timings: dict[str, Any]
    importance: pd.DataFrame | None = None
    final_params: dict[str, Any] | None = None
    patches: TablePatches | None = None
    unmatched: pd.DataFrame | None = None
    n_table_rows: int | None = None
    write_dir: Path | None = None
    final_failed_candidates: int | None = None
    selection: dict[str, Any] | None = None
    excluded: dict[str, str] = dataclasses.field(default_factory=dict)
    final_fallback: dict[str, Any] | None = None
    final_attempts: list[dict[str, Any]] | None = None

    @property
    def folder(self) -> Path:
        """Where the run's files are being written (see ``write_dir``)."""
        return self.write_dir or self.out_dir

    @property
    def models(self) -> list[str]:
        """The models cross-validated, in ``--models`` order (not the ``nested`` procedure)."""
        return [name for name in self.results if name != NESTED]

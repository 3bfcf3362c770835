"""``classify train --tune``: a small hyper-parameter search inside every training part.

Each model has one small grid (:func:`classify.registry.search_space`):

======  ===========================================================  ==========
model   parameters searched                                          candidates
======  ===========================================================  ==========
svm     ``C`` in {1, 10, 100}; ``gamma`` in {0.3, 1, 3} x "scale"    9
        (1 / n_features on standardised features)
logreg  ``C`` in {0.01, 0.1, 1, 10}                                  4
rf      ``max_features`` in {"log2", "sqrt", 0.2};                   9
        ``min_samples_leaf`` in {1, 2, 4}
knn     ``n_neighbors`` in {3, 5, 10, 20};                           8
        ``weights`` in {"uniform", "distance"}
hgb     ``learning_rate`` in {0.1, 0.2};                             8
        ``max_leaf_nodes`` in {15, 31}; ``l2_regularization`` in {0, 1}
mlp     (width, ``dropout``, ``learning_rate``): the default            3
        (``--mlp-layers``, 0.5, 1e-3), faster learning (same, 0.5,
        3e-3), smaller and lighter (half the width, 0.2, 1e-3)
======  ===========================================================  ==========

Every space holds the untuned default, so the search can keep it.

How a split is tuned (:func:`choose_params`): the search is given the
split's training rows only (for ``holdout``, its train and validation
rows), never the outer test rows. Its inner splits follow the outer
protocol's group rules (:func:`classify.inner.inner_splits`: whole
predefined folds, whole groups, the validation part). Successive halving
(:class:`~sklearn.model_selection.HalvingGridSearchCV`, factor
:data:`FACTOR`, on rows, by accuracy) scores every candidate on a random
subsample and keeps the best third for three times as many rows, ending
with the whole training part. The first subsample is large enough for
:data:`MIN_ROWS_PER_CLASS` rows of the rarest class in an inner training
part, which can mean fewer halving steps (or one: a plain grid search) on
small tables. The winner's parameters are then set on a fresh copy of the
model, which is fitted on the training part as without ``--tune`` (for
``holdout``: on the train rows, early-stopping on validation). The final
model is tuned the same way on all rows.

The random forest halves over trees instead of rows (``n_estimators``:
a third, then all of its 300 trees for the best third of the candidates),
scikit-learn's own example of the method, as every forest sees all rows.
The SVM is searched without its probability calibration: temperature
scaling does not change which class has the highest decision value, so
the accuracy of a candidate is the same, four times cheaper; ``C`` and
``gamma`` then go to the calibrated SVM. A candidate whose fit fails scores NaN
(ranked last, never chosen) and is counted: ``run.json``'s
``tuning.failed_candidates`` and a warning say how many, per model and
split, with the first error.

Cost: a search costs about as much as (halving steps x (inner splits - 1)
+ 1) fits of the model on its whole training part, for models whose fit
time grows with the rows. The Keras MLP's does not on small tables: an
epoch costs about the same on 150 rows as on 1,000 (Keras' per-epoch
overhead), so a fit on a subsample is as dear as a full one. Its first
step therefore uses at least :data:`MLP_MIN_ROWS` rows; below that the
search is a plain grid (3 candidates x 2 inner splits, then the split's
own fit: about 7 fits instead of 1), which is why its space is the
smallest. Measured on the demo table (1,000 clips, 10 folds, 2 cores),
``--tune`` costs about 5x the untuned run
(``tests/benchmarks/bench_train.py --tune-on``).
"""
from __future__ import annotations

import math
import warnings
from typing import Any, NamedTuple

import numpy as np
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.experimental import enable_halving_search_cv  # noqa: F401 - enables the import below
from sklearn.model_selection import HalvingGridSearchCV, ParameterGrid
from sklearn.pipeline import Pipeline

from .mlp import KerasMLPClassifier

#: Successive halving keeps the best 1/FACTOR of the candidates at each step
#: and gives them FACTOR times as many rows.
FACTOR = 3
#: Rows of the rarest class expected in an inner training part at the first
#: halving step (fewer make fits fail or early stopping impossible).
MIN_ROWS_PER_CLASS = 6
#: The MLP's first halving step uses at least this many rows: on fewer a
#: Keras fit costs about the same whatever the rows.
MLP_MIN_ROWS = 2000


def choose_params(
    template: Pipeline,
    X: np.ndarray,
    y: np.ndarray,
    *,
    space: dict[str, list[Any]] | list[dict[str, list[Any]]],
    cv: list[tuple[np.ndarray, np.ndarray]],
    fit_params: dict[str, Any],
    seed: int = 0,
) -> dict[str, Any]:
    """Pick the parameters of ``template`` by successive halving over ``space``.

    Parameters
    ----------
    template : Pipeline
        Unfitted; cloned for every candidate.
    X : np.ndarray [shape=(n, n_features)]
        The rows the search may see: a training part (``holdout``: train
        and validation rows), never outer test rows.
    y : np.ndarray [shape=(n,)]
    space : dict
        From :func:`classify.registry.search_space`.
    cv : list of (train, test)
        Inner splits, positions into ``X`` (:func:`classify.inner.inner_splits`).
    fit_params : dict
        Passed to every candidate's ``fit`` (``{"svm__groups": ...}``,
        one value per row of ``X``; each fit gets its rows' values).
    seed : int
        Random state of the halving's row subsamples.

    Returns
    -------
    Choice
        The best candidate's parameters (keys of ``space``) and the number of
        candidates whose fit failed.

    Raises
    ------
    ValueError
        Every candidate failed to fit (the message says why).
    """
    estimator, searched, fit_params, back = _searched(template, space, fit_params)
    n_candidates = len(ParameterGrid(searched))
    name, model = template.steps[-1]
    least = MLP_MIN_ROWS if isinstance(model, KerasMLPClassifier) else 1
    resources = {"resource": "n_samples", "min_resources": first_resources(y, cv, n_candidates, least)}
    trees = f"{name}__n_estimators"
    if isinstance(model, RandomForestClassifier):
        most = int(estimator.get_params()[trees])
        resources = {"resource": trees, "max_resources": most,
                     "min_resources": max(1, most // FACTOR ** (_steps(n_candidates) - 1))}
    search = HalvingGridSearchCV(
        estimator, searched, cv=cv, factor=FACTOR, **resources, scoring="accuracy", refit=False,
        error_score=np.nan, return_train_score=False, random_state=seed, n_jobs=1,
    )
    with warnings.catch_warnings(record=True) as caught:
        # The candidates are rough fits on subsamples, thrown away: what they warn
        # about (a class with too few groups in a subsample) says nothing about the
        # model that is kept. Failed fits are counted below instead.
        warnings.simplefilter("always")
        search.fit(X, y, **fit_params)
    failed = failed_candidates(search.cv_results_)
    if failed == len(search.cv_results_["params"]):
        raise ValueError(f"every candidate failed to fit ({_first_failure(caught)})")
    # best_params_ holds the resource of the last step too (297 of 300 trees): not a choice.
    best = {k: v for k, v in search.best_params_.items() if k != resources["resource"]}
    return Choice(back(best), failed, len(search.cv_results_["params"]), _first_failure(caught))


class Choice(NamedTuple):
    """What a search chose, and how many of its candidates (per halving step) failed to fit.

    Attributes
    ----------
    params : dict
        The best candidate's parameters.
    n_failed, n_candidates : int
        Candidates (counted once per halving step they ran in) with at least
        one fit that raised, and all candidates; a failed fit scores NaN and
        ranks last, so it is never chosen.
    first_error : str
        The first failure's message ("" when none failed).
    """

    params: dict[str, Any]
    n_failed: int
    n_candidates: int
    first_error: str = ""


def failed_candidates(results: dict[str, Any]) -> int:
    """Candidates of a search's ``cv_results_`` with a failed fit (a NaN split score)."""
    splits = [np.asarray(v, dtype=float) for k, v in results.items()
              if k.startswith("split") and k.endswith("_test_score")]
    if not splits:
        return 0
    return int(np.isnan(np.vstack(splits)).any(axis=0).sum())


def _first_failure(caught: list[warnings.WarningMessage]) -> str:
    from sklearn.exceptions import FitFailedWarning

    for w in caught:
        if issubclass(w.category, FitFailedWarning):
            lines = [line for line in str(w.message).splitlines() if line.strip()]
            return " ".join(lines[-1].split())[:200] if lines else "a fit failed"
    return ""


def first_resources(y: np.ndarray, cv: list[tuple[np.ndarray, np.ndarray]], n_candidates: int,
                    least: int = 1) -> int:
    """Rows of the first halving step: the last step uses all rows, the first enough of each class.

    As many halving steps as the candidates need (until one is left), but
    fewer when the first subsample would hold less than
    :data:`MIN_ROWS_PER_CLASS` rows of the rarest class in an inner
    training part (on average), or fewer than ``least`` rows.

    Examples
    --------
    >>> y = np.array(["a"] * 900 + ["b"] * 100)
    >>> cv = [(np.arange(500), np.arange(500, 1000))] * 2
    >>> first_resources(y, cv, 9)  # 2 steps: 333 rows, then 999
    333
    """
    n = len(y)
    rarest = np.unique(y, return_counts=True)[1].min() / n
    train_share = min(len(train) for train, _ in cv) / n
    floor = max(MIN_ROWS_PER_CLASS / (rarest * train_share), least)
    possible = 1 + math.floor(math.log(n / floor, FACTOR) + 1e-9) if n > floor else 1
    steps = max(1, min(_steps(n_candidates), possible))
    return max(1, n // FACTOR ** (steps - 1))


def _steps(n_candidates: int) -> int:
    """Halving steps until one candidate is left (scikit-learn's count)."""
    return 1 + math.floor(math.log(n_candidates, FACTOR) + 1e-9) if n_candidates > 1 else 1


def _searched(template: Pipeline, space: dict[str, list[Any]] | list[dict[str, list[Any]]],
              fit_params: dict[str, Any]):
    """(estimator, space, fit parameters, map back) as searched: a calibrated model without its calibration."""
    name, model = template.steps[-1]
    if not isinstance(model, CalibratedClassifierCV):
        return clone(template), space, fit_params, dict
    plain = Pipeline([*template.steps[:-1], (name, clone(model.estimator))])
    inner, outer = f"{name}__", f"{name}__estimator__"
    grids = [space] if isinstance(space, dict) else space
    searched = [{key.replace(outer, inner, 1): values for key, values in grid.items()} for grid in grids]
    # The calibration folds used the groups; the bare estimator takes none.
    params = {key: value for key, value in fit_params.items() if not key.startswith(inner)}
    return plain, searched, params, lambda best: {k.replace(inner, outer, 1): v for k, v in best.items()}


def display_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Chosen parameters without the model's step prefix, JSON-ready (``{"estimator__C": 10.0}``).

    Examples
    --------
    >>> display_params("mlp", {"mlp__hidden_layers": (50, 25), "mlp__dropout": 0.2})
    {'dropout': 0.2, 'hidden_layers': [50, 25]}
    """
    prefix = f"{name}__"
    shown = {}
    for key in sorted(params):
        value = params[key]
        if isinstance(value, tuple):
            value = [v.item() if isinstance(v, np.generic) else v for v in value]
        elif isinstance(value, np.generic):
            value = value.item()
        shown[key.removeprefix(prefix)] = value
    return shown

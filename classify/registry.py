"""The models ``classify train`` knows: one entry each, read by every module that needs to know.

Each :class:`ModelInfo` says what a model learns from (feature columns or
log-mel patches), whether it takes class weights, whether it early-stops
on a validation part, what ``--tune`` searches, which kind of bundle saves
it, and its colour in every figure. :mod:`classify.models` builds the
estimators named here; :mod:`classify.tuning` searches the spaces;
:mod:`classify.plots` colours by it; :mod:`classify.bundle` checks a
saved model's kind against it; :mod:`classify.options` and the CLI list
the names. The order of :data:`MODELS` is the report order.

This module imports nothing heavy, so the pages can read it.

>>> MODEL_NAMES
('mlp', 'logreg', 'svm', 'rf', 'knn', 'hgb')
>>> PATCH_MODELS, MODELS["cnn"].inputs, MODELS["knn"].class_weights
(('cnn', 'cnn_aug'), 'patches', False)
>>> search_space("logreg", n_features=10, mlp_layers=(8,))
{'logreg__C': [0.01, 0.1, 1.0, 10.0]}
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "ALL_MODELS", "BUNDLE_KINDS", "MODELS", "MODEL_NAMES", "PATCH_MODELS", "WEIGHTLESS_MODELS",
    "ModelInfo", "is_patch_model", "search_space",
]

#: A ``--tune`` space: parameter name -> candidates, or a list of such grids.
Space = dict[str, list[Any]] | list[dict[str, list[Any]]]
#: The kinds of saved model (:mod:`classify.bundle`).
BUNDLE_KINDS = ("sklearn", "keras-mlp", "keras-cnn")


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """One model of the comparison.

    Attributes
    ----------
    name : str
        ``--models`` name, leaderboard row, and the pipeline's final step.
    title : str
        What it is, in a few words (help text, pages).
    inputs : {"columns", "patches"}
        The feature table's columns, or the clips' log-mel patches.
    colour : str
        Its colour in every figure (Okabe & Ito where possible).
    class_weights : bool
        Takes ``--class-weight balanced``.
    early_stops : bool
        Stops training on a validation part (the dataset's own under
        ``holdout``, else one carved from the training part).
    bundle : str
        The kind of bundle that saves it (:data:`BUNDLE_KINDS`).
    space : callable or None
        ``space(n_features, mlp_layers)`` -> the ``--tune`` grid; None: not tuned.
    """

    name: str
    title: str
    inputs: str
    colour: str
    class_weights: bool = True
    early_stops: bool = False
    bundle: str = "sklearn"
    space: Callable[[int, tuple[int, ...]], Space] | None = None


def _mlp_space(n_features: int, layers: tuple[int, ...]) -> Space:
    half = tuple(max(1, u // 2) for u in layers)
    return [{"mlp__hidden_layers": [width], "mlp__dropout": [dropout], "mlp__learning_rate": [rate]}
            for width, dropout, rate in ((layers, 0.5, 1e-3), (layers, 0.5, 3e-3), (half, 0.2, 1e-3))]


def _grid(grid: dict[str, list[Any]]) -> Callable[[int, tuple[int, ...]], Space]:
    return lambda n_features, layers: {k: list(v) for k, v in grid.items()}


def _svm_space(n_features: int, layers: tuple[int, ...]) -> Space:
    return {"svm__estimator__C": [1.0, 10.0, 100.0],
            "svm__estimator__gamma": [g / n_features for g in (0.3, 1.0, 3.0)]}


MODELS: dict[str, ModelInfo] = {m.name: m for m in (
    ModelInfo("mlp", "Keras multi-layer perceptron", "columns", "#0072B2", early_stops=True,
              bundle="keras-mlp", space=_mlp_space),
    ModelInfo("logreg", "logistic regression", "columns", "#E69F00",
              space=_grid({"logreg__C": [0.01, 0.1, 1.0, 10.0]})),
    ModelInfo("svm", "RBF support vector machine, temperature-calibrated", "columns", "#009E73",
              space=_svm_space),
    ModelInfo("rf", "random forest, 300 trees", "columns", "#D55E00",
              space=_grid({"rf__max_features": ["log2", "sqrt", 0.2],
                           "rf__min_samples_leaf": [1, 2, 4]})),
    ModelInfo("knn", "k-nearest neighbours", "columns", "#CC79A7", class_weights=False,
              space=_grid({"knn__n_neighbors": [3, 5, 10, 20],
                           "knn__weights": ["uniform", "distance"]})),
    ModelInfo("hgb", "histogram gradient boosting", "columns", "#56B4E9", early_stops=True,
              space=_grid({"hgb__learning_rate": [0.1, 0.2], "hgb__max_leaf_nodes": [15, 31],
                           "hgb__l2_regularization": [0.0, 1.0]})),
    ModelInfo("cnn", "Keras CNN on log-mel patches", "patches", "#000000", early_stops=True,
              bundle="keras-cnn"),
    ModelInfo("cnn_aug", "the CNN, trained with augmented copies", "patches", "#666666",
              early_stops=True, bundle="keras-cnn"),
)}

#: The models of the feature table, compared by default.
MODEL_NAMES = tuple(n for n, m in MODELS.items() if m.inputs == "columns")
#: The models of log-mel patches (``--models ...,cnn,cnn_aug``; they need ``--patches``).
PATCH_MODELS = tuple(n for n, m in MODELS.items() if m.inputs == "patches")
#: Every name ``--models`` accepts.
ALL_MODELS = tuple(MODELS)
#: The models that take no class weights.
WEIGHTLESS_MODELS = frozenset(n for n, m in MODELS.items() if not m.class_weights)


def is_patch_model(name: str) -> bool:
    """True for a model that learns from log-mel patches rather than feature columns."""
    return name in PATCH_MODELS


def search_space(name: str, *, n_features: int, mlp_layers: Sequence[int]) -> Space:
    """The candidates ``--tune`` searches for model ``name``, as pipeline parameters.

    Parameters
    ----------
    name : str
        A model of :data:`MODELS` that has a space (not the CNNs).
    n_features : int
        Feature columns; the SVM's ``gamma`` values are multiples of
        1 / n_features (scikit-learn's ``"scale"`` on standardised features).
    mlp_layers : sequence of int
        The MLP's hidden layers (``--mlp-layers``); the search tries them
        as given and at half the width.

    Returns
    -------
    dict of str to list, or list of such dicts
        A grid; for the MLP a list of one-candidate grids, in the form
        :class:`~sklearn.model_selection.ParameterGrid` takes.

    Examples
    --------
    >>> [c["mlp__hidden_layers"] for c in search_space("mlp", n_features=10, mlp_layers=(100, 50))]
    [[(100, 50)], [(100, 50)], [(50, 25)]]
    """
    info = MODELS.get(name)
    if info is None or info.space is None:
        tunable = [n for n, m in MODELS.items() if m.space is not None]
        raise ValueError(f"model {name!r} has no --tune space; the tuned models are {','.join(tunable)}")
    if n_features < 1:
        raise ValueError(f"n_features={n_features} must be at least 1")
    return info.space(n_features, tuple(int(u) for u in mlp_layers))

"""The models compared by ``python -m classify train``.

Every model is a :class:`~sklearn.pipeline.Pipeline` of a StandardScaler
and the estimator, so scaling is fitted on the training part of each split
only. The final step is named after the model (``mlp``, ``logreg``, ...);
fit parameters reach it as ``<name>__<param>``, e.g. ``mlp__groups``.

Speed matters (the full comparison on UrbanSound8K-sized tables has to fit
in minutes on two cores), which shaped two choices:

* ``svm``: ``SVC(probability=True)`` refits five times for Platt scaling
  and is deprecated; instead the SVC is calibrated once by temperature
  scaling on 3-fold cross-validated decision values
  (``CalibratedClassifierCV(ensemble=False)``), which keeps its decisions.
* ``hgb`` stops adding trees when a held-out 10% stops improving.
"""
from __future__ import annotations

from collections.abc import Sequence

from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from .errors import UsageError
from .mlp import KerasMLPClassifier

MODEL_NAMES = ("mlp", "logreg", "svm", "rf", "knn", "hgb")
DEFAULT_MLP_LAYERS = (100, 200, 100)
CLASS_WEIGHTS = (None, "balanced")
# k-nearest neighbours has no class weights; the others take "balanced".
WEIGHTLESS_MODELS = frozenset({"knn"})


def parse_models(text: str | Sequence[str]) -> list[str]:
    """Model names from ``--models`` (``"mlp,logreg"``), distinct, in the order given.

    Examples
    --------
    >>> parse_models("svm, mlp,svm")
    ['svm', 'mlp']
    """
    names = text.split(",") if isinstance(text, str) else list(text)
    names = list(dict.fromkeys(str(n).strip() for n in names if str(n).strip()))
    unknown = [n for n in names if n not in MODEL_NAMES]
    if unknown or not names:
        what = f"unknown model(s) {', '.join(map(repr, unknown))}" if unknown else "no model given"
        raise UsageError(f"--models: {what}; choose from {','.join(MODEL_NAMES)}")
    return names


def parse_layers(text: str | Sequence[int]) -> tuple[int, ...]:
    """Hidden layer sizes from ``--mlp-layers`` (``"256,128,64"``).

    Examples
    --------
    >>> parse_layers("256,128,64")
    (256, 128, 64)
    """
    parts = text.split(",") if isinstance(text, str) else list(text)
    try:
        layers = tuple(int(str(p).strip()) for p in parts)
    except ValueError:
        layers = ()
    if not layers or any(u <= 0 for u in layers):
        raise UsageError(
            f"--mlp-layers {text!r} must be comma-separated positive integers, e.g. 100,200,100"
        )
    return layers


def make_pipeline(
    name: str,
    *,
    seed: int = 0,
    n_classes: int | None = None,
    class_weight: str | None = None,
    mlp_layers: Sequence[int] = DEFAULT_MLP_LAYERS,
    epochs: int | None = None,
    verbose: int = 0,
) -> Pipeline:
    """An unfitted ``Pipeline(StandardScaler, <model>)``.

    Parameters
    ----------
    name : str
        One of :data:`MODEL_NAMES`; also the name of the final step.
    seed : int
        Random state of every estimator that has one.
    n_classes : int or None
        Number of classes, if known; checked to be at least 2.
    class_weight : None or "balanced"
        ``"balanced"`` weighs classes inversely to their frequency (ignored
        by ``knn``, which has no class weights).
    mlp_layers : sequence of int
        Hidden layer sizes of ``mlp``.
    epochs : int or None
        Maximum epochs of ``mlp`` (None: the estimator's default, 200).
    verbose : int
        Keras verbosity of ``mlp``.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Steps ``("scaler", StandardScaler())`` and ``(name, estimator)``;
        every final estimator has ``predict_proba``.

    Examples
    --------
    >>> make_pipeline("knn").steps[-1][0]
    'knn'
    """
    if name not in MODEL_NAMES:
        raise UsageError(f"unknown model {name!r}; choose from {','.join(MODEL_NAMES)}")
    if class_weight not in CLASS_WEIGHTS:
        raise UsageError(f"--class-weight {class_weight!r} must be 'balanced' or not given")
    if n_classes is not None and n_classes < 2:
        raise UsageError(f"n_classes={n_classes} must be at least 2 to train a classifier")
    builders = {
        "mlp": lambda: KerasMLPClassifier(
            hidden_layers=tuple(mlp_layers), class_weight=class_weight, random_state=seed,
            verbose=verbose, **({"epochs": epochs} if epochs is not None else {}),
        ),
        "logreg": lambda: LogisticRegression(
            max_iter=2000, class_weight=class_weight, random_state=seed
        ),
        "svm": lambda: CalibratedClassifierCV(
            SVC(kernel="rbf", gamma="scale", C=1.0, class_weight=class_weight, cache_size=500),
            method="temperature", cv=3, ensemble=False,
        ),
        "rf": lambda: RandomForestClassifier(
            n_estimators=300, n_jobs=-1, class_weight=class_weight, random_state=seed
        ),
        "knn": lambda: KNeighborsClassifier(n_neighbors=5, weights="distance"),
        "hgb": lambda: HistGradientBoostingClassifier(
            early_stopping=True, class_weight=class_weight, random_state=seed
        ),
    }
    return Pipeline([("scaler", StandardScaler()), (name, builders[name]())])

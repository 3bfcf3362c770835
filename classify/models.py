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
  (:class:`GroupCalibratedClassifierCV`, ``ensemble=False``), which keeps
  its decisions.
* ``hgb`` stops adding trees when a held-out 10% stops improving
  (:class:`GroupHistGradientBoostingClassifier`).

Two models learn from log-mel patches (``features patches``) instead of
the feature columns, and are compared under the same splits
(:mod:`classify.table_patches` joins the patches to the table's rows):
``cnn`` (:class:`~classify.cnn.KerasCNNClassifier`) and ``cnn_aug``, the
same network trained on its training clips plus one augmented version of
each (:mod:`classify.augment`). ``classify train`` runs them when asked
(:data:`classify.registry.PATCH_MODELS`, not in
:data:`~classify.registry.MODEL_NAMES`), since they need the
patches; ``make train`` asks for ``cnn`` by default and makes the patches
first, ``cnn_aug`` is opt-in (it adds about 3 minutes to the demo). Their
pipeline has the network as its only step: it standardises the patches
itself, with statistics of its training part only.

The models that split their training data again (the MLP's and HGB's early
stopping, the SVM's calibration folds) take ``groups`` in ``fit`` and keep
each recording on one side of those inner splits too: a validation or
calibration part that shares recordings with the rest makes every
confidence optimistic. :func:`group_fit_params` routes the groups to them.
"""
from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight

from .augment import Augmentation
from .cnn import KerasCNNClassifier
from .errors import UsageError
from .inner import calibration_folds, validation_split
from .mlp import KerasMLPClassifier
from .registry import ALL_MODELS, MODELS, is_patch_model

DEFAULT_MLP_LAYERS = (100, 200, 100)
CLASS_WEIGHTS = (None, "balanced")


def parse_models(text: str | Sequence[str]) -> list[str]:
    """Model names from ``--models`` (``"mlp,logreg"``), distinct, in the order given.

    Examples
    --------
    >>> parse_models("svm, mlp,svm")
    ['svm', 'mlp']
    """
    names = text.split(",") if isinstance(text, str) else list(text)
    names = list(dict.fromkeys(str(n).strip() for n in names if str(n).strip()))
    unknown = [n for n in names if n not in ALL_MODELS]
    if unknown or not names:
        what = f"unknown model(s) {', '.join(map(repr, unknown))}" if unknown else "no model given"
        raise UsageError(f"--models: {what}; choose from {','.join(ALL_MODELS)}")
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


#: From this many feature columns on (the rich preset's 2,110), ``hgb`` bins each column into
#: WIDE_HGB_BINS values instead of 255: its histograms are built over every column, so its
#: cost grows with the width (measured on the rich demo table: 18x the default preset's time
#: with 255 bins; one fold 3.1x faster with 63, accuracy 0.902 against 0.885).
WIDE_COLUMNS = 500
WIDE_HGB_BINS = 63


def make_pipeline(
    name: str,
    *,
    seed: int = 0,
    n_classes: int | None = None,
    class_weight: str | None = None,
    mlp_layers: Sequence[int] = DEFAULT_MLP_LAYERS,
    epochs: int | None = None,
    verbose: int = 0,
    patch_params: Any = None,
    cnn_epochs: int | None = None,
    stereo_split: bool = False,
    n_features: int | None = None,
) -> Pipeline:
    """An unfitted ``Pipeline(StandardScaler, <model>)`` (``Pipeline(<model>)`` for a CNN).

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
        Keras verbosity of ``mlp``, ``cnn`` and ``cnn_aug``.
    patch_params : features.params.PatchParams or None
        The patches' parameters; ``cnn_aug`` needs them (its pitch shift
        and noise mixing depend on ``sr`` and ``top_db``).
    cnn_epochs : int or None
        Maximum epochs of ``cnn`` and ``cnn_aug`` (None: the estimator's
        default, 30).
    stereo_split : bool
        ``cnn_aug`` also trains on each channel of its stereo training
        clips (``channels.npy``).
    n_features : int or None
        Feature columns of the table, if known: ``hgb`` uses
        :data:`WIDE_HGB_BINS` bins per column above :data:`WIDE_COLUMNS`.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Steps ``("scaler", StandardScaler())`` and ``(name, estimator)``,
        or only ``(name, estimator)`` for the patch models; every final
        estimator has ``predict_proba``.

    Examples
    --------
    >>> make_pipeline("knn").steps[-1][0]
    'knn'
    """
    if name not in ALL_MODELS:
        raise UsageError(f"unknown model {name!r}; choose from {','.join(ALL_MODELS)}")
    if class_weight not in CLASS_WEIGHTS:
        raise UsageError(f"--class-weight {class_weight!r} must be 'balanced' or not given")
    if not MODELS[name].class_weights:
        class_weight = None
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
        "svm": lambda: GroupCalibratedClassifierCV(
            SVC(kernel="rbf", gamma="scale", C=1.0, class_weight=class_weight, cache_size=500),
            method="temperature", cv=3, ensemble=False,
        ),
        "rf": lambda: RandomForestClassifier(
            n_estimators=300, n_jobs=-1, class_weight=class_weight, random_state=seed
        ),
        "knn": lambda: KNeighborsClassifier(n_neighbors=5, weights="distance"),
        "hgb": lambda: GroupHistGradientBoostingClassifier(
            early_stopping=True, class_weight=class_weight, random_state=seed,
            max_bins=WIDE_HGB_BINS if n_features is not None and n_features > WIDE_COLUMNS else 255,
        ),
    }
    if is_patch_model(name):
        augment = None
        if name == "cnn_aug":
            if patch_params is None:
                raise UsageError("cnn_aug needs the patches' parameters (patch_params) for its "
                                 "augmentation; pass read_patches(folder)['params']")
            augment = Augmentation.for_patches(patch_params, stereo_split=bool(stereo_split))
        cnn = KerasCNNClassifier(
            augment=augment, class_weight=class_weight, random_state=seed, verbose=verbose,
            **({"epochs": cnn_epochs} if cnn_epochs is not None else {}),
        )
        return Pipeline([(name, cnn)])
    return Pipeline([("scaler", StandardScaler()), (name, builders[name]())])


def group_fit_params(pipe: Pipeline, groups: np.ndarray | None) -> dict[str, Any]:
    """``{"<final step>__groups": groups}`` if the pipeline's model takes groups, else ``{}``.

    Examples
    --------
    >>> group_fit_params(make_pipeline("svm"), np.array(["r1", "r1", "r2"]))
    {'svm__groups': array(['r1', 'r1', 'r2'], dtype='<U2')}
    >>> group_fit_params(make_pipeline("knn"), np.array(["r1", "r1", "r2"]))
    {}
    """
    name, model = pipe.steps[-1]
    if groups is None or "groups" not in inspect.signature(model.fit).parameters:
        return {}
    return {f"{name}__groups": groups}


class GroupCalibratedClassifierCV(CalibratedClassifierCV):
    """:class:`~sklearn.calibration.CalibratedClassifierCV` whose folds keep groups whole.

    Takes the same parameters; ``cv`` is the number of folds wanted. The
    folds come from :func:`classify.inner.calibration_folds`: grouped when
    :meth:`fit` gets ``groups``, stratified, and no more than the rarest
    class allows. The fitted object is a plain calibrated classifier (the
    folds are not kept).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(40, 2)), np.array(["a", "b"] * 20)
    >>> clf = GroupCalibratedClassifierCV(SVC(), method="temperature", cv=3, ensemble=False)
    >>> clf.fit(X, y, groups=np.repeat(np.arange(10), 4)).predict_proba(X).shape
    (40, 2)
    """

    def fit(self, X, y, groups=None, sample_weight=None) -> GroupCalibratedClassifierCV:
        """Fit the estimator and its calibrator; ``groups`` (shape ``(n_samples,)``) keeps recordings whole."""
        if not isinstance(self.cv, int):
            raise TypeError(f"cv={self.cv!r} must be a number of folds")
        folds = calibration_folds(np.asarray(y), groups, self.cv)
        calibrated = CalibratedClassifierCV(**{**self.get_params(deep=False), "cv": folds})
        calibrated.fit(X, y, sample_weight=sample_weight)
        # Keep the fitted state (attributes ending in "_"), not the folds.
        for name, value in vars(calibrated).items():
            if name.endswith("_") and not name.startswith("_"):
                setattr(self, name, value)
        return self


class GroupHistGradientBoostingClassifier(HistGradientBoostingClassifier):
    """:class:`~sklearn.ensemble.HistGradientBoostingClassifier` whose early stopping holds out whole groups.

    Takes the same parameters. With ``early_stopping`` and ``groups`` given
    to :meth:`fit`, the validation part (``validation_fraction`` of the
    groups) comes from :func:`classify.inner.validation_split` instead of a
    split over rows; without groups it is scikit-learn's own.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(60, 2)), np.array(["a", "b", "c"] * 20)
    >>> clf = GroupHistGradientBoostingClassifier(early_stopping=True, random_state=0)
    >>> clf.fit(X, y, groups=np.repeat(np.arange(20), 3)).predict_proba(X).shape
    (60, 3)
    """

    def fit(self, X, y, groups=None, sample_weight=None, X_val=None, y_val=None
            ) -> GroupHistGradientBoostingClassifier:
        """Fit the trees; ``groups`` (shape ``(n_samples,)``) keeps recordings out of both sides.

        ``X_val``, ``y_val`` give early stopping a validation part of its own
        (the ``holdout`` protocol's validation rows; rows of a class absent
        from ``y`` are left out); every row of ``X`` is then trained on.
        """
        X, y = np.asarray(X), np.asarray(y)
        # "auto" turns early stopping on above 10 000 rows, as in scikit-learn.
        stops = self.early_stopping is True or (self.early_stopping == "auto" and len(y) > 10_000)
        if X_val is not None and stops:
            X_val, y_val = np.asarray(X_val), np.asarray(y_val)
            known = np.isin(y_val, np.unique(y))
            if known.any():
                X_val, y_val = X_val[known], y_val[known]
                val_weights = None
                if self.class_weight is not None:
                    # The training rows' class weights, as when scikit-learn splits itself.
                    classes = np.unique(y)
                    weights = compute_class_weight(self.class_weight, classes=classes, y=y)
                    val_weights = weights[np.searchsorted(classes, y_val)]
                return super().fit(X, y, sample_weight=sample_weight, X_val=X_val, y_val=y_val,
                                   sample_weight_val=val_weights)
        if groups is None or not stops or self.validation_fraction is None:
            return super().fit(X, y, sample_weight=sample_weight)
        train, val = validation_split(y, np.asarray(groups), self.validation_fraction, self.random_state)
        if len(val) == 0:
            warnings.warn("early stopping could not hold out whole recording groups (each class "
                          "has too few); it used a split over clips", UserWarning, stacklevel=2)
            return super().fit(X, y, sample_weight=sample_weight)
        # fit weighs the training rows by class itself; the validation loss gets the
        # same class weights, as when scikit-learn splits the rows itself.
        weights = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
        val_weights = None if weights is None else weights[val]
        if self.class_weight is not None:
            val_weights = compute_sample_weight(self.class_weight, y)[val] * (
                1.0 if val_weights is None else val_weights)
        return super().fit(X[train], y[train], sample_weight=None if weights is None else weights[train],
                           X_val=X[val], y_val=y[val], sample_weight_val=val_weights)

"""What ``python -m classify train`` is asked to do: :class:`TrainOptions`, checked once.

Every option is validated when the object is made, so a mistyped value is
a usage error before any table is read (exit code 2), and every later
step can trust what it is given.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from joblib import cpu_count

from .errors import UsageError
from .models import (
    CLASS_WEIGHTS,
    DEFAULT_MLP_LAYERS,
    make_pipeline,
    parse_layers,
    parse_models,
)
from .registry import MODEL_NAMES, is_patch_model
from .splits import PROTOCOLS
from .values import is_int

__all__ = ["SELECTIONS", "TrainOptions"]

#: How the final model is chosen (``--select``); see :class:`TrainOptions`.
SELECTIONS = ("best", "nested")


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    """Everything ``train`` takes besides the table and the output folder.

    Parameters
    ----------
    models : sequence of str
        Names from :data:`classify.registry.MODEL_NAMES` and
        :data:`~classify.registry.PATCH_MODELS`, in report order.
    cv : str
        Protocol: auto, holdout, folds, group, stratified or random.
    k : int
        Splits of the group / stratified protocols.
    seed : int
        Seed of the splitters and of every model.
    mlp_layers : sequence of int
        Hidden layer sizes of the MLP.
    class_weight : None or "balanced"
        Class weighting for skewed classes.
    final : str or None
        Model to refit and save; None picks the best by mean accuracy.
    epochs : int or None
        Maximum MLP epochs (None: 200).
    quiet : bool
        Print no per-split progress.
    tune : bool
        Choose every model's parameters by a search inside each training
        part (:mod:`classify.tuning`), and the final model's on all rows.
    importance : bool
        Compute grouped permutation importance of the feature families on
        the out-of-fold predictions (:mod:`classify.importance`); not for
        the CNN models, which see no feature column.
    cnn_epochs : int or None
        Maximum epochs of ``cnn`` and ``cnn_aug`` (None: 30, with early stopping).
    cnn_stereo_split : bool
        ``cnn_aug`` also trains on each channel of its stereo training
        clips (``channels.npy``; off: 2.5 times the examples on the demo
        for no gain in accuracy).
    select : {"best", "nested"}
        How the final model is chosen, and whether that choice is itself
        evaluated. ``best``: the leaderboard's best (by validation accuracy
        under ``holdout``). ``nested``: also evaluate the whole procedure
        "pick the best model, then fit it": inside every outer training
        part the models are compared on inner splits (by the protocol's
        rules), the winner's outer score is kept, and those scores form the
        leaderboard row ``nested`` (:func:`nested_selection`).
    keep_columns : sequence of str
        Feature columns to keep although they look like the label in
        disguise (:func:`classify.tables.label_leaks`); by default such
        columns are left out of the features, with a warning naming them.
    jobs : int
        Worker processes for the splits (0: one per usable core; 1: fit
        in this process). Scores and out-of-fold predictions do not depend
        on it, bit for bit: every split is fitted by :func:`~classify.validation.fit_split` with
        the same seeds and single-threaded BLAS, OpenMP and TensorFlow,
        wherever it runs (random forests give the same trees whatever their
        ``n_jobs``). Only the timings change. One limit: if TensorFlow was
        started in this process before ``train`` (say, by earlier code in a
        notebook), its thread pools are kept, and MLP and CNN results with
        ``jobs=1`` are not guaranteed to match the workers' to the last bit.
    """

    models: Sequence[str] = MODEL_NAMES
    cv: str = "auto"
    k: int = 5
    seed: int = 0
    mlp_layers: Sequence[int] = DEFAULT_MLP_LAYERS
    class_weight: str | None = None
    final: str | None = None
    epochs: int | None = None
    quiet: bool = False
    jobs: int = 0
    tune: bool = False
    importance: bool = True
    cnn_epochs: int | None = None
    cnn_stereo_split: bool = False
    select: str = "best"
    keep_columns: Sequence[str] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", tuple(parse_models(self.models)))
        object.__setattr__(self, "keep_columns", tuple(str(c) for c in self.keep_columns))
        if self.select not in SELECTIONS:
            raise UsageError(f"--select {self.select!r} is not one of: {', '.join(SELECTIONS)}")
        object.__setattr__(self, "mlp_layers", parse_layers(self.mlp_layers))
        if self.cv not in PROTOCOLS:
            raise UsageError(f"--cv {self.cv!r} is not one of: {', '.join(PROTOCOLS)}")
        if not is_int(self.k) or self.k < 2:
            raise UsageError(f"--k {self.k!r} must be an integer >= 2")
        if not is_int(self.seed) or self.seed < 0:
            raise UsageError(f"--seed {self.seed!r} must be an integer >= 0")
        if self.class_weight not in CLASS_WEIGHTS:
            raise UsageError(f"--class-weight {self.class_weight!r} must be 'balanced' or not given")
        if self.epochs is not None and (not is_int(self.epochs) or self.epochs < 1):
            raise UsageError(f"--epochs {self.epochs!r} must be an integer >= 1")
        if self.cnn_epochs is not None and (not is_int(self.cnn_epochs) or self.cnn_epochs < 1):
            raise UsageError(f"--cnn-epochs {self.cnn_epochs!r} must be an integer >= 1")
        if not is_int(self.jobs) or self.jobs < 0:
            raise UsageError(f"--jobs {self.jobs!r} must be an integer >= 0 (0 = all cores)")
        for name in ("tune", "importance", "quiet", "cnn_stereo_split"):
            if not isinstance(getattr(self, name), bool):
                raise UsageError(f"{name}={getattr(self, name)!r} must be True or False")
        if self.final is not None and self.final not in self.models:
            raise UsageError(
                f"--final {self.final!r} is not among --models {','.join(self.models)}; "
                "the final model must be cross-validated too"
            )

    def effective_jobs(self) -> int:
        """Worker processes to use: ``jobs``, or the usable cores when 0."""
        return self.jobs or cpu_count()

    def pipeline(self, name: str, n_classes: int | None = None, patch_params: Any = None,
                 n_features: int | None = None):
        """The unfitted pipeline of model ``name`` with these options.

        ``patch_params`` (the patches' PatchParams) is needed by ``cnn_aug``;
        ``n_features`` (the table's width) by ``hgb``.
        """
        return make_pipeline(
            name, seed=self.seed, n_classes=n_classes, class_weight=self.class_weight,
            mlp_layers=self.mlp_layers, epochs=self.epochs, patch_params=patch_params,
            cnn_epochs=self.cnn_epochs, stereo_split=self.cnn_stereo_split, n_features=n_features,
        )

    @property
    def patch_models(self) -> tuple[str, ...]:
        """The requested models that learn from patches (``cnn``, ``cnn_aug``)."""
        return tuple(m for m in self.models if is_patch_model(m))

"""Classification of audio feature tables: honest, fold-aware model comparison.

Public names are imported on first use, so ``import classify`` is cheap and
never imports TensorFlow (the MLP and the CNN import it inside ``fit``/``predict``).

>>> from classify import load_table, choose_protocol, make_pipeline
>>> callable(make_pipeline)
True
"""
from __future__ import annotations

import importlib
from typing import Any

from .errors import (
    BundleError,
    ClassifyError,
    ModelError,
    RunDirError,
    SplitError,
    TableError,
    UsageError,
)

_LAZY = {
    "FeatureTable": "tables",
    "load_table": "tables",
    "Protocol": "splits",
    "choose_protocol": "splits",
    "make_pipeline": "models",
    "MODEL_NAMES": "registry",
    "KerasMLPClassifier": "mlp",
    "KerasCNNClassifier": "cnn",
    "TrainOptions": "options",
    "train": "training",
}

__all__ = [
    "MODEL_NAMES",
    "BundleError",
    "ClassifyError",
    "FeatureTable",
    "KerasCNNClassifier",
    "KerasMLPClassifier",
    "ModelError",
    "Protocol",
    "RunDirError",
    "SplitError",
    "TableError",
    "TrainOptions",
    "UsageError",
    "choose_protocol",
    "load_table",
    "make_pipeline",
    "train",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Save and load a trained model as a bundle directory, without pickle.

A bundle is everything ``python -m classify predict`` needs to label new
clips: the fitted model, its class names, the feature columns in model order
and the extraction parameters copied from ``features.json`` (for a CNN: the
patch parameters from ``patches.json`` instead). Layout, by ``kind``::

    model/
        bundle.json      format name + version, kind, classes, columns, features_meta,
                         [segment], [patch_params], library versions, file checksums
        pipeline.skops   the whole scikit-learn Pipeline       "sklearn", or
        scaler.skops     the Pipeline minus its final step   } "keras-mlp", or
        mlp.keras        the Keras model (native format)     }
        cnn.keras        the CNN (native format)              } "keras-cnn"
        cnn.json         classes, patch parameters, checksum  } (cnn_files.save_cnn)

Loading never runs code from the bundle: the ``.skops`` files are loaded
only after every type they contain has been checked against an explicit
allow-list of scikit-learn/numpy types, and Keras loads in safe mode
(no Python lambdas; a CNN file holding any layer type the CNN of
:mod:`classify.cnn` does not have is refused too). TensorFlow is imported
only when a Keras bundle is saved or loaded, so importing this module
stays light.

A CNN bundle (kind ``keras-cnn``) has no feature columns (``[]``) and no
extraction parameters (``{}``); ``patch_params`` says how ``predict``
computes the log-mel patch of a new clip
(:func:`features.patches.patch_files`).

A model trained on a segment table (one row per window of a clip) records
its windows in ``segment`` (``{"seconds": S, "hop": H, "last": "pad" |
"drop"}``, from features.json); ``predict`` then cuts new clips the same
way and pools the windows. Such a bundle is written as format 2, so a
version of this package that cannot cut windows refuses it instead of
labelling whole clips with a window model.

The package: :mod:`~classify.bundle.format` (names, kinds, the versioned
JSON reader, what a model was trained on), :mod:`~classify.bundle.safe`
(the allow-listed skops and Keras loaders), :mod:`~classify.bundle.cnn_files`
(``cnn.keras`` + ``cnn.json``), :mod:`~classify.bundle.save` and
:mod:`~classify.bundle.load`.
"""
from __future__ import annotations

from .cnn_files import LoadedCNN, load_cnn, save_cnn
from .format import (
    BUNDLE_JSON,
    CNN_FILE,
    CNN_JSON,
    FORMAT_NAME,
    FORMAT_VERSION,
    KERAS_FILE,
    KIND_KERAS_CNN,
    KIND_KERAS_MLP,
    KIND_SKLEARN,
    PIPELINE_FILE,
    SCALER_FILE,
    check_segment,
)
from .load import Bundle, check_trained_on, load_bundle
from .safe import TRUSTED_SKOPS_TYPES
from .save import save_bundle

__all__ = [
    "BUNDLE_JSON",
    "CNN_FILE",
    "CNN_JSON",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "KERAS_FILE",
    "KIND_KERAS_CNN",
    "KIND_KERAS_MLP",
    "KIND_SKLEARN",
    "PIPELINE_FILE",
    "SCALER_FILE",
    "TRUSTED_SKOPS_TYPES",
    "Bundle",
    "LoadedCNN",
    "check_segment",
    "check_trained_on",
    "load_bundle",
    "load_cnn",
    "save_bundle",
    "save_cnn",
]

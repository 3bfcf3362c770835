"""The final model: refitted on all rows, checked, and saved as a bundle.

The model chosen by :mod:`classify.selection` (or ``--final``) is
refitted on every row the run used (tuned on them with ``--tune``). A
Keras refit that ends at chance is never saved: the next model of the
leaderboard is refitted and saved instead, and ``run.json`` says so.
"""
from __future__ import annotations

import contextlib
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from features.compute import feature_columns
from features.errors import FeaturesError
from features.io.atomic import file_sha256
from features.params import FeatureParams

from . import registry, rundir, tuning
from .bundle import save_bundle
from .errors import CollapsedFitError
from .log import Log, stderr_warning
from .models import group_fit_params
from .registry import is_patch_model
from .results import TrainResult
from .rundir import NESTED
from .tables import FeatureTable
from .validation import (
    SearchTask,
    augmentation_inputs,
    failed_candidates_note,
    fit_pipeline,
    run_search,
    thread_limits,
    warning_lines,
)
from .values import json_safe


def refit_and_save(result: TrainResult, *, log: Log = print, warn: Log | None = None) -> Path | None:
    """Refit the final model and save it; a refit that ends at chance is never saved.

    A Keras model checks its final refit on the part of the rows it holds
    out for early stopping (restarting a collapsed fit, as in the splits).
    If it still ends at chance it is not saved: the next model of the
    leaderboard is refitted and saved instead (unless ``--final`` named
    the model), and ``run.json``'s ``final_fallback`` says so.
    """
    warn = warn or stderr_warning
    named = result.final_model
    order = ([named] if result.options.final else
             [m for m in result.leaderboard["model"] if m != NESTED])
    for name in order[order.index(named):]:
        result.final_model = name
        try:
            path = _refit_and_save(result, log=log, warn=warn)
        except CollapsedFitError as collapsed:
            warn(f"no bundle of {name}: {collapsed}")
            if result.final_fallback is None:
                result.final_fallback = {"model": name, "reason": str(collapsed),
                                         "saved_instead": None}
            continue
        if result.final_fallback is not None:
            result.final_fallback["saved_instead"] = name
        return path
    result.final_model = named
    return None


def _refit_and_save(result: TrainResult, *, log: Log, warn: Log) -> Path | None:
    """Refit the final model on all rows and save it as ``out_dir/model``.

    With ``--tune`` its parameters are first chosen by a search on all
    rows, with inner splits by the protocol's rules (for ``holdout``:
    scored on the validation rows); they end up in
    :attr:`TrainResult.final_params` and ``run.json``.

    Skipped, with a warning, when the table has no ``features.json`` (the
    bundle must carry the extraction parameters for ``predict``) or when
    its feature columns are not the ones those parameters produce. A bundle
    left by an earlier run is then removed so it cannot be mistaken for
    this run's model.

    A CNN is refitted on the patches of all rows and saved with their
    patch parameters (``predict`` computes patches of new clips with
    them); it needs no ``features.json``.

    Returns
    -------
    Path or None
        The bundle directory, or None when skipped.

    Raises
    ------
    CollapsedFitError
        A Keras refit ended at chance on its held-out part.
    """
    table, name, options = result.table, result.final_model, result.options
    bundle_dir = result.folder / rundir.BUNDLE_DIR
    if is_patch_model(name):
        return _refit_and_save_cnn(result, bundle_dir, log=log, warn=warn)
    reason = None
    if table.features_meta is None:
        reason = (f"there is no {table.path.stem}.json beside the table, so `predict` would not "
                  "know how to compute features for new clips")
    elif not _columns_match_params(table):
        reason = (f"the table's feature columns are not the ones the parameters in "
                  f"{table.path.stem}.json produce (was the table edited?), so `predict` could "
                  "not compute them for new clips")
    if reason:
        # The run's files replace the previous run's as a set: an earlier bundle goes with it.
        warn(f"no model bundle saved: {reason}")
        return None
    pipe = options.pipeline(name, n_classes=len(table.classes), n_features=table.n_features)
    groups = result.protocol.recordings
    fit_params = group_fit_params(pipe, groups)
    with _final_fit(result, warn):
        if options.tune:
            train, validation = result.protocol.final_rows(table.n_rows)
            rows, cv = result.protocol.search_splits(train, validation, seed=options.seed)
            space = registry.search_space(name, n_features=table.n_features, mlp_layers=options.mlp_layers)
            search = SearchTask(rows, cv, group_fit_params(pipe, None if groups is None else groups[rows]),
                                space, options.seed)
            choice = run_search(pipe, table.X, table.y, search, where="all rows (final fit)")
            params = choice.params
            result.final_failed_candidates = choice.n_failed
            note = failed_candidates_note(name, {"final": choice}, 1)
            if note:
                warn(note)
            pipe.set_params(**params)
            result.final_params = tuning.display_params(name, params)
            log(f"final model {name}: --tune chose {json.dumps(json_safe(result.final_params))}")
        fit_pipeline(pipe, table.X, table.y, fit_params, where="all rows (final fit)")
    _check_final_fit(result, pipe)
    save_bundle(
        bundle_dir, model_name=name, estimator=pipe, class_names=[str(c) for c in pipe.classes_],
        feature_columns=list(table.feature_columns), features_meta=table.features_meta,
        segment=table.features_meta.get("segment") if table.is_segmented else None,
    )
    path = result.out_dir / rundir.BUNDLE_DIR
    log(f"final model {name} refitted on all {table.n_rows} rows and saved to {path}")
    return path


def _check_final_fit(result: TrainResult, pipe: Pipeline) -> None:
    """Record a Keras refit's attempts; raise :class:`CollapsedFitError` when it ended at chance."""
    model = pipe.steps[-1][1]
    attempts = getattr(model, "attempts_", None)
    result.final_attempts = attempts
    if getattr(model, "collapsed_", False):
        last = max(attempts, key=lambda a: a["balanced_accuracy"])
        raise CollapsedFitError(
            f"its refit on all rows stayed at chance on the part it held out (balanced accuracy "
            f"{last['balanced_accuracy']:.3f}, best of {len(attempts)} attempt(s))")


@contextlib.contextmanager
def _final_fit(result: TrainResult, warn: Log):
    """Around the final refit: single-threaded BLAS, its warnings passed on once, its time recorded."""
    t = time.perf_counter()
    with thread_limits(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for line in warning_lines(caught):
        warn(f"{result.final_model} (final fit): {line}")
    result.timings["final_fit_seconds"] = time.perf_counter() - t


def _refit_and_save_cnn(result: TrainResult, bundle_dir: Path, *, log: Log, warn: Log) -> Path:
    """Refit CNN ``result.final_model`` on the patches of all rows; save it as a CNN bundle."""
    table, name, patches = result.table, result.final_model, result.patches
    pipe = result.options.pipeline(name, n_classes=len(table.classes), patch_params=patches.params)
    rows = np.arange(table.n_rows)
    fit_params = {**group_fit_params(pipe, result.protocol.recordings), **augmentation_inputs(pipe, patches, rows)}
    with _final_fit(result, warn):
        fit_pipeline(pipe, patches[rows], table.y, fit_params, where="all rows (final fit)")
    _check_final_fit(result, pipe)
    save_bundle(bundle_dir, model_name=name, estimator=pipe,
                class_names=[str(c) for c in pipe.classes_], patch_params=patches.params,
                patches_meta=patches_provenance(result))
    path = result.out_dir / rundir.BUNDLE_DIR
    log(f"final model {name} refitted on the patches of all {table.n_rows} clips and saved to {path}")
    return path


def patches_provenance(result: TrainResult) -> dict[str, Any] | None:
    """What ``run.json`` and the bundle record about the patches of a run with a CNN."""
    patches = result.patches
    if patches is None:
        return None
    unmatched = result.unmatched if result.unmatched is not None else pd.DataFrame(
        columns=["missing_from"])
    counts = unmatched["missing_from"].value_counts()
    return {
        "folder": str(patches.folder.resolve()),
        "root": patches.root,
        "patches_json_sha256": file_sha256(patches.folder / "patches.json"),
        "params": patches.params.to_dict(),
        "param_key": patches.params.key(),
        "shape": list(patches.params.shape),
        "n_noise": patches.n_noise,
        "models": list(result.options.patch_models),
        "n_table_rows": result.n_table_rows,
        "n_rows": result.table.n_rows,
        "unmatched": {"no_patch": int(counts.get("patches", 0)),
                      "no_table_row": int(counts.get("features", 0)),
                      "file": rundir.UNMATCHED if len(unmatched) else None},
    }


def _columns_match_params(table: FeatureTable) -> bool:

    try:
        params = FeatureParams.from_dict(dict(table.features_meta.get("params") or {}))
    except (FeaturesError, TypeError, AttributeError):
        return False
    return feature_columns(params) == list(table.feature_columns)

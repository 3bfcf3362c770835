"""``python -m classify train``: cross-validate the models, write the run, save the final model.

:func:`train` is the whole command: load and check the table, choose the
protocol, cross-validate every requested model over the protocol's splits
(a fresh :func:`~sklearn.base.clone` per split, scaling inside the
pipeline), collect out-of-fold predictions, score them, write the run
directory, refit the final model (``--final``, else the best) on all rows
and save it as a bundle.

Options that change what a split does, all inside :func:`~classify.validation.fit_split`, so
the outer test rows only ever reach a fitted model's ``predict_proba``:

* ``--tune``: the model's parameters are chosen by a search on the
  split's training rows (:mod:`classify.tuning`); the final model is tuned
  on all rows the same way.
* ``holdout``: the model is fitted on the train rows and early-stops on
  the validation rows.
* grouped permutation importance (on by default, ``--no-importance``):
  the split's fitted model predicts its test rows again with each feature
  family shuffled (:mod:`classify.importance`).

On a segment table (one row per window) the scores are per clip (mean
window probability), with the per-window accuracy beside them
(:mod:`classify.evaluation`).

The CNN models (``cnn``, ``cnn_aug``: :data:`classify.registry.PATCH_MODELS`)
learn from the clips' log-mel patches instead of the feature columns. The
patches are joined to the table's rows by ``path``
(:func:`classify.table_patches.attach_patches`) before the protocol is
built, so every model, on columns or on patches, is trained and scored on
the same clips under the same splits; clips on one side only are left out
of the whole run and listed in ``unmatched.csv``. A worker gets the
patches folder and row numbers, and reads the rows it needs from the
memory-mapped ``patches.npy``. ``cnn_aug`` augments the training rows of a
split only, after its early-stopping part is held out
(:class:`classify.cnn.KerasCNNClassifier`). Permutation importance of
feature families does not apply to them (they see no feature column):
they have no rows in ``importance.csv``, and ``run.json`` and the reports
say so. ``--tune`` does not tune them.

The steps live in their own modules: :mod:`classify.options` (what was
asked), :mod:`classify.validation` (the splits), :mod:`classify.selection`
(which model, which number), :mod:`classify.record` (the run's files) and
:mod:`classify.final` (the saved model). The run directory (``--out``) and
its schema belong to :mod:`classify.rundir`.
"""
from __future__ import annotations

import dataclasses
import shutil
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from features.engine.outputs import STAGING, OutputLock, clean_leftovers
from features.io.ownership import claim
from features.io.storage import is_url

from . import evaluation, rundir
from .errors import TableError
from .final import refit_and_save
from .leaks import label_leaks
from .log import Log, stderr_warning
from .options import TrainOptions
from .record import (
    commit_run,
    per_class_table,
    report_markdown,
    unmatched_note,
    write_run,
)
from .registry import PATCH_MODELS, WEIGHTLESS_MODELS, is_patch_model
from .results import TrainResult
from .rundir import NESTED
from .selection import nested_selection
from .splits import Protocol, choose_protocol
from .table_patches import TablePatches, attach_patches, find_patches
from .tables import FeatureTable, load_table
from .validation import cross_validate_model

__all__ = ["default_out_dir", "train"]


# ------------------------------------------------------------------ command


def default_out_dir(table_path: str | Path) -> Path:
    """The run folder beside the table: ``run`` next to it, or next to its features folder.

    A table written by ``features extract`` (a ``<stem>.json`` beside it)
    sits in an output folder of its own (``data/output/<name>/features/``):
    the run goes beside that folder (``data/output/<name>/run``). Any other
    table gets ``run`` in its own folder (``/data/X/table.csv`` ->
    ``/data/X/run``).
    """
    table = Path(table_path).resolve()
    if table.with_name(f"{table.stem}.json").is_file():
        return table.parent.parent / "run"
    return table.parent / "run"


def _dataset_root(table: FeatureTable) -> Path | None:
    """The local dataset the table was extracted from (a run folder may not lie inside it)."""
    root = (table.features_meta or {}).get("root")
    if not isinstance(root, str) or is_url(root):
        return None
    return Path(root)


def train(
    table_path: str | Path,
    out_dir: str | Path | None = None,
    options: TrainOptions | None = None,
    *,
    patches: str | Path | None = None,
    log: Log = print,
    warn: Log | None = None,
    force: bool = False,
) -> TrainResult:
    """Run the whole ``train`` command.

    The run folder is written as a set: every file goes into a staging
    folder inside ``out_dir`` and is moved into place at the end,
    ``run.json`` (which lists the others) last. A folder holding files that
    are not a run's is refused (``force``: write beside them); a previous
    run's files are replaced, and only those.

    Parameters
    ----------
    table_path : str or Path
        ``features.csv`` / ``features.parquet``.
    out_dir : str, Path or None
        Run directory; None: :func:`default_out_dir`.
    options : TrainOptions or None
        Models, protocol and their parameters (None: defaults).
    patches : str, Path or None
        Output folder of ``features patches`` for the CNN models; None:
        ``patches`` beside the table's folder
        (:func:`classify.table_patches.default_patches_dir`). Only read
        when ``options.models`` holds a CNN model; then every model is
        trained on the clips that have both a table row and a patch.
    log : callable
        Receives every progress/summary line (``print`` by default).
    warn : callable or None
        Receives warnings (default: ``warning: ...`` on stderr).
    force : bool
        Write into a non-empty folder that holds no run (its files are kept).

    Returns
    -------
    TrainResult

    Raises
    ------
    TableError, SplitError, UsageError, BundleError
        With a message naming the problem (the CLI prints it on one line).
    """
    options = options or TrainOptions()
    warn = warn or stderr_warning
    started = time.perf_counter()
    table = load_table(table_path)
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(table.path)
    n_table_rows = table.n_rows
    log(table.describe())
    if table.ignored_columns:
        log(f"ignored non-numeric column(s): {', '.join(table.ignored_columns)}")
    table, excluded = _without_label_leaks(table, options.keep_columns, warn)
    patch_set = unmatched = None
    if options.patch_models:
        table, patch_set, unmatched, notes = attach_patches(table, find_patches(table.path, patches))
        log(patch_set.describe())
        for note in notes:
            warn(note)
        if len(unmatched):
            warn(unmatched_note(unmatched, table.n_rows, out_dir))
    elif patches is not None:
        warn(f"--patches is only read by the models {', '.join(PATCH_MODELS)}; ignored")
    # Everything that can be refused is, before the folder is touched.
    protocol = choose_protocol(table, options.cv, k=options.k, seed=options.seed)
    previous = claim(out_dir, rundir.RUN_JSON, rundir.RUN_NAMES, force=force,
                     dataset_root=_dataset_root(table), command="classify train")
    with OutputLock(out_dir) as lock:
        clean_leftovers(out_dir)
        if lock.message():
            warn(lock.message())
        staging = out_dir / f"{STAGING}{uuid.uuid4().hex[:12]}"
        staging.mkdir()
        try:
            result = _train(table, out_dir, staging, options, protocol, patch_set, unmatched,
                            n_table_rows=n_table_rows, log=log, warn=warn, started=started,
                            excluded=excluded)
            commit_run(result, previous)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return result


def _train(table: FeatureTable, out_dir: Path, staging: Path, options: TrainOptions,
           protocol: Protocol, patch_set: TablePatches | None, unmatched: pd.DataFrame | None, *,
           n_table_rows: int, log: Log, warn: Log, started: float,
           excluded: dict[str, str]) -> TrainResult:
    """Cross-validate, write the run into ``staging``, refit and save the final model."""
    log(protocol.describe())
    for note in protocol.warnings:
        warn(note)
    if options.class_weight and WEIGHTLESS_MODELS & set(options.models):
        warn(f"--class-weight is ignored by {', '.join(sorted(WEIGHTLESS_MODELS & set(options.models)))}")
    if table.is_segmented:
        log("segment table: scores per clip (mean of its windows' probabilities); "
            "window_accuracy per window")
    if options.tune and options.patch_models:
        warn(f"--tune does not tune {', '.join(options.patch_models)}: they are trained with "
             "their fixed parameters (and early stopping)")
    timings: dict[str, Any] = {"load_and_split_seconds": time.perf_counter() - started,
                               "cv_wall_seconds": {}}
    results = {}
    for name in options.models:
        t = time.perf_counter()
        results[name] = cross_validate_model(name, table, protocol, options, patches=patch_set,
                                             log=log, warn=warn)
        timings["cv_wall_seconds"][name] = time.perf_counter() - t
    selection = None
    if options.select == "nested":
        t = time.perf_counter()
        results[NESTED], selection = nested_selection(table, protocol, options, results,
                                                      patches=patch_set, log=log)
        timings["cv_wall_seconds"][NESTED] = time.perf_counter() - t
    folds = pd.concat([r.folds for r in results.values()], ignore_index=True)
    board = evaluation.leaderboard(folds)
    final = options.final or next(m for m in board["model"] if m != NESTED)
    per_class = per_class_table(results, table)
    # Summed over splits: more than the wall time when splits run in parallel.
    timings["cv_fit_seconds"] = {n: r.fit_seconds for n, r in results.items()}
    timings["cv_predict_seconds"] = {n: r.predict_seconds for n, r in results.items()}
    imp = None
    permuted = [r.importance for r in results.values() if r.importance is not None]
    if options.importance:
        timings["importance_seconds"] = {n: r.importance_seconds for n, r in results.items()
                                         if not is_patch_model(n)}
    if permuted:
        imp = pd.concat(permuted, ignore_index=True)
    result = TrainResult(
        out_dir=out_dir, table=table, protocol=protocol, options=options, results=results,
        leaderboard=board, folds=folds, per_class=per_class, final_model=final,
        bundle_dir=None, timings=timings, importance=imp, patches=patch_set, unmatched=unmatched,
        n_table_rows=n_table_rows, write_dir=staging, selection=selection, excluded=excluded,
    )
    t = time.perf_counter()
    write_run(result)
    timings["write_seconds"] = time.perf_counter() - t
    t = time.perf_counter()
    result.bundle_dir = refit_and_save(result, log=log, warn=warn)
    timings["refit_and_save_seconds"] = time.perf_counter() - t
    timings["total_seconds"] = time.perf_counter() - started
    # Written last: they say whether the bundle was saved.
    rundir.write_report_md(staging, report_markdown(result))
    return result


def _without_label_leaks(table: FeatureTable, keep: Sequence[str], warn: Log
                         ) -> tuple[FeatureTable, dict[str, str]]:
    """The table without the feature columns that are the label in disguise, and which they were."""
    leaks = {name: why for name, why in label_leaks(table).items() if name not in keep}
    for name, why in leaks.items():
        warn(f"column {name!r} is not used as a feature: {why}, so it is the label in disguise "
             f"(a model would score perfectly on it and learn nothing); --keep-column {name} "
             "keeps it")
    unknown = [name for name in keep if name not in table.feature_columns]
    if unknown:
        warn(f"--keep-column {', '.join(unknown)}: no such feature column; ignored")
    if not leaks:
        return table, {}
    kept = tuple(c for c in table.feature_columns if c not in leaks)
    if not kept:
        raise TableError(f"{table.path}: every feature column is the label in disguise "
                         f"({', '.join(leaks)}); give --keep-column NAME for any that really is "
                         "a feature")
    return dataclasses.replace(table, feature_columns=kept), leaks

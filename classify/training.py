"""``python -m classify train``: cross-validate the models, write the run, save the final model.

:func:`train` is the whole command: load and check the table, choose the
protocol, cross-validate every requested model over the protocol's splits
(a fresh :func:`~sklearn.base.clone` per split, scaling inside the
pipeline), collect out-of-fold predictions, score them, write the run
directory, refit the final model (``--final``, else the best) on all rows
and save it as a bundle.

Options that change what a split does, all inside :func:`fit_split`, so
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

The CNN models (``cnn``, ``cnn_aug``: :data:`classify.models.PATCH_MODELS`)
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

The run directory (``--out``) and its schema belong to :mod:`classify.rundir`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import importlib.metadata
import inspect
import json
import platform
import shutil
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, cpu_count, delayed
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from features.outputs import STAGING, OutputLock, clean_leftovers, commit
from features.ownership import claim
from features.storage import is_url
from features.table import file_sha256

from . import evaluation, importance, plots, rundir, tuning
from .bundle import save_bundle
from .cnn import KerasCNNClassifier
from .errors import (
    ClassifyError,
    CollapsedFitError,
    ModelError,
    SplitError,
    TableError,
    UsageError,
)
from .keras_base import import_keras
from .mlp import KerasMLPClassifier
from .models import (
    CLASS_WEIGHTS,
    DEFAULT_MLP_LAYERS,
    MODEL_NAMES,
    PATCH_MODELS,
    WEIGHTLESS_MODELS,
    group_fit_params,
    is_patch_model,
    make_pipeline,
    parse_layers,
    parse_models,
)
from .references import references_for
from .splits import LEAKY_NOTE, PROTOCOLS, Protocol, choose_protocol, inner_splits
from .table_patches import TablePatches, attach_patches, find_patches
from .tables import SEGMENT_COLUMNS, FeatureTable, label_leaks, load_table

Log = Callable[[str], None]
IMPORTANCE_SKIPPED_REASON = ("the CNN takes log-mel patches, not the feature columns, so there is no "
                             "feature family to shuffle")
# Final steps that start TensorFlow: their workers size its thread pools first.
_KERAS_MODELS = (KerasMLPClassifier, KerasCNNClassifier)

#: How the final model is chosen (``--select``); see :class:`TrainOptions`.
SELECTIONS = ("best", "nested")
#: The leaderboard row of ``--select nested``: the procedure, not a model.
NESTED = "nested"

_VERSIONED = (
    "numpy", "pandas", "scikit-learn", "tensorflow", "keras", "skops", "librosa", "matplotlib",
    "soundfeatures",
)


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    """Everything ``train`` takes besides the table and the output folder.

    Parameters
    ----------
    models : sequence of str
        Names from :data:`classify.models.MODEL_NAMES` and
        :data:`~classify.models.PATCH_MODELS`, in report order.
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
        on it, bit for bit: every split is fitted by :func:`fit_split` with
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
        if not _is_int(self.k) or self.k < 2:
            raise UsageError(f"--k {self.k!r} must be an integer >= 2")
        if not _is_int(self.seed) or self.seed < 0:
            raise UsageError(f"--seed {self.seed!r} must be an integer >= 0")
        if self.class_weight not in CLASS_WEIGHTS:
            raise UsageError(f"--class-weight {self.class_weight!r} must be 'balanced' or not given")
        if self.epochs is not None and (not _is_int(self.epochs) or self.epochs < 1):
            raise UsageError(f"--epochs {self.epochs!r} must be an integer >= 1")
        if self.cnn_epochs is not None and (not _is_int(self.cnn_epochs) or self.cnn_epochs < 1):
            raise UsageError(f"--cnn-epochs {self.cnn_epochs!r} must be an integer >= 1")
        if not _is_int(self.jobs) or self.jobs < 0:
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

    def pipeline(self, name: str, n_classes: int | None = None, patch_params: Any = None):
        """The unfitted pipeline of model ``name`` with these options.

        ``patch_params`` (the patches' PatchParams) is needed by ``cnn_aug``.
        """
        return make_pipeline(
            name, seed=self.seed, n_classes=n_classes, class_weight=self.class_weight,
            mlp_layers=self.mlp_layers, epochs=self.epochs, patch_params=patch_params,
            cnn_epochs=self.cnn_epochs, stereo_split=self.cnn_stereo_split,
        )

    @property
    def patch_models(self) -> tuple[str, ...]:
        """The requested models that learn from patches (``cnn``, ``cnn_aug``)."""
        return tuple(m for m in self.models if is_patch_model(m))


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
    warn = warn or _stderr_warning
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
    per_class = _per_class(results, table)
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


def nested_selection(table: FeatureTable, protocol: Protocol, options: TrainOptions,
                     results: dict[str, CVResult], *, patches: TablePatches | None = None,
                     log: Log = print) -> tuple[CVResult, dict[str, Any]]:
    """Score the procedure "pick the best model, then fit it" without letting the pick see a test part.

    Inside every outer training part the models are compared on inner
    splits made by the protocol's rules (:func:`search_rows`: whole folds,
    whole groups; under ``holdout`` the validation part, whose scores the
    models already have); the winner of that part is the model whose
    outer score is kept. The fit of the winner on the outer training part
    is the one cross-validation already made, so only the inner fits cost.

    Returns
    -------
    CVResult
        Named :data:`NESTED`: per split, the chosen model's scores and
        out-of-fold predictions.
    dict
        ``rule``, ``chosen`` (split -> model) and ``inner_accuracy`` (split ->
        model -> mean inner accuracy), for ``run.json`` and the report.
    """
    names = [n for n in results if n != NESTED]
    inner: dict[str, dict[str, float]] = {s.name: {} for s in protocol.splits}
    if has_validation(protocol):
        rule = "the best validation accuracy (the dataset's validation part)"
        for name in names:
            row = results[name].folds.iloc[0]
            inner[protocol.splits[0].name][name] = float(row["validation_accuracy"])
    else:
        rule = "the best mean accuracy over inner splits of each training part"
        for name in names:
            for split_name, score in _inner_scores(name, table, protocol, options, patches).items():
                inner[split_name][name] = score
    chosen = {s.name: max(names, key=lambda n, s=s: (inner[s.name][n], -names.index(n)))
              for s in protocol.splits}
    y, classes = table.y, table.classes
    proba = np.full((len(y), len(classes)), np.nan)
    predicted = np.full(len(y), None, dtype=object)
    split_of_row = np.full(len(y), None, dtype=object)
    rows = []
    for split in protocol.splits:
        source = results[chosen[split.name]]
        proba[split.test] = source.proba[split.test]
        predicted[split.test] = source.predicted[split.test]
        split_of_row[split.test] = split.name
        row = source.folds[source.folds["split"] == split.name].iloc[0].copy()
        row["model"] = NESTED
        rows.append(row)
        if not options.quiet:
            log(f"  {NESTED:<7} {split.name:<16} accuracy {row['accuracy']:.3f}  chose "
                f"{chosen[split.name]} (inner accuracy {inner[split.name][chosen[split.name]]:.3f})")
    folds = pd.DataFrame(rows).reset_index(drop=True)
    acc = folds["accuracy"]
    log(f"{NESTED}: accuracy {acc.mean():.3f} ± {acc.std(ddof=0):.3f} over {len(folds)} split(s) "
        f"(the model chosen inside each training part: "
        f"{', '.join(f'{m} x{n}' for m, n in pd.Series(chosen).value_counts().items())})")
    fit = float(folds["fit_seconds"].sum())
    result = CVResult(NESTED, folds, predicted, proba, split_of_row, fit, 0.0)
    return result, {"rule": rule, "chosen": chosen, "inner_accuracy": _json_safe(inner)}


def _inner_scores(name: str, table: FeatureTable, protocol: Protocol, options: TrainOptions,
                  patches: TablePatches | None) -> dict[str, float]:
    """Mean accuracy of model ``name`` over the inner splits of each outer training part."""
    X, y, classes = _model_inputs(name, table, patches), table.y, table.classes
    template = options.pipeline(name, n_classes=len(classes),
                                patch_params=None if patches is None else patches.params)
    groups = _fit_groups(table)
    tasks, owners = [], []
    for position, split in enumerate(protocol.splits):
        rows, cv = search_rows(table, protocol, split.train, split.validation, seed=options.seed)
        for k, (inner_train, inner_test) in enumerate(cv):
            train, test = rows[inner_train], rows[inner_test]
            tasks.append(SplitTask(
                name=f"{split.name} inner {k + 1}", train=train, test=test,
                fit_params=group_fit_params(template, None if groups is None else groups[train]),
                seed=_split_seed(options.seed, position)))
            owners.append(split.name)
    scores: dict[str, list[float]] = {}
    for owner, task, outcome in zip(owners, tasks,
                                    _quiet_restarts(_run_splits(template, X, y, classes, tasks,
                                                                options)), strict=True):
        scores.setdefault(owner, []).append(_split_scores(table, task.test, outcome.proba)["accuracy"])
    return {owner: float(np.mean(values)) for owner, values in scores.items()}


def commit_run(result: TrainResult, previous: Sequence[str]) -> None:
    """Write ``run.json`` (listing every file) and move the run from staging into place.

    The bundle folder is swapped in whole; files of the previous run that
    this one does not have are removed, and no other file.
    """
    staging = result.folder
    files = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
    info = dataclasses.replace(run_info(result), files={
        name: {"sha256": file_sha256(staging / name), "bytes": (staging / name).stat().st_size}
        for name in files})
    rundir.write_run_info(staging, info)
    commit(result.out_dir, staging, files, rundir.RUN_JSON, previous=previous,
           units=(rundir.BUNDLE_DIR,))
    result.write_dir = None


def cross_validate_model(
    name: str,
    table: FeatureTable,
    protocol: Protocol,
    options: TrainOptions,
    *,
    patches: TablePatches | None = None,
    log: Log = print,
    warn: Log | None = None,
) -> CVResult:
    """Fit a fresh clone of model ``name`` on every split's training rows; predict its test rows.

    With ``options.jobs`` != 1 the splits run in parallel worker processes,
    one single-threaded fit each (see :func:`fit_split`). Warnings raised
    while fitting (e.g. a solver that did not converge) are passed to
    ``warn`` once each, after the last split. A CNN model (``patches``
    needed, one per table row) learns from the patches instead of
    ``table.X``.

    Returns
    -------
    CVResult
        Per-split scores and out-of-fold predictions (and, with the
        options, the chosen parameters and the importance table).
    """
    y, classes = table.y, table.classes
    X = _model_inputs(name, table, patches)
    template = options.pipeline(name, n_classes=len(classes),
                                patch_params=None if patches is None else patches.params)
    tasks = split_tasks(name, template, table, protocol, options)
    predicted = np.full(len(y), None, dtype=object)
    proba = np.full((len(y), len(classes)), np.nan)
    split_of_row = np.full(len(y), None, dtype=object)
    families = importance.feature_families(table.feature_columns)
    permuted = (np.full((len(families), importance.N_REPEATS, len(y), len(classes)), np.nan,
                        dtype=np.float32) if _permutes(name, options) else None)
    rows, chosen, seen, failed, restarts = [], [], {}, {}, {}
    fit_total = predict_total = importance_total = 0.0
    outcomes = _run_splits(template, X, y, classes, tasks, options)
    for split, outcome in zip(protocol.splits, _quiet_restarts(outcomes)):
        fit_total += outcome.fit_seconds
        predict_total += outcome.predict_seconds
        importance_total += outcome.importance_seconds
        proba[split.test] = outcome.proba
        predicted[split.test] = classes[np.argmax(outcome.proba, axis=1)]
        split_of_row[split.test] = split.name
        if permuted is not None:
            permuted[:, :, split.test] = outcome.permuted
        scores = _split_scores(table, split.test, outcome.proba)
        row = {"model": name, "split": split.name, "fold": split.fold, "n_train": len(split.train),
               "n_test": len(split.test), **scores, "fit_seconds": outcome.fit_seconds,
               "restarts": len(outcome.attempts or [None]) - 1}
        if outcome.validation_proba is not None:
            row["validation_accuracy"] = _split_scores(table, split.validation,
                                                       outcome.validation_proba)["accuracy"]
        if outcome.attempts and len(outcome.attempts) > 1:
            restarts[split.name] = outcome.attempts
        if outcome.params is not None:
            chosen.append(tuning.display_params(name, outcome.params))
            row["params"] = json.dumps(_json_safe(chosen[-1]), sort_keys=True)
        if outcome.search is not None:
            failed[split.name] = outcome.search
        rows.append(row)
        for line in outcome.warnings:
            seen[line] = seen.get(line, 0) + 1
        if not options.quiet:
            window = (f" (windows {scores['window_accuracy']:.3f})" if "window_accuracy" in scores else "")
            log(f"  {name:<7} {split.name:<16} accuracy {scores['accuracy']:.3f}{window}  "
                f"fit {outcome.fit_seconds:6.1f} s" + (f"  {row['params']}" if "params" in row else ""))
    for line, count in seen.items():
        (warn or _stderr_warning)(f"{name}: {line} (in {count} of {len(protocol.splits)} splits)")
    note = failed_candidates_note(name, failed, len(protocol.splits))
    if note:
        (warn or _stderr_warning)(note)
    for split_name, attempts in restarts.items():
        last = attempts[-1]
        (warn or _stderr_warning)(
            f"{name}: the fit on {split_name} stayed at chance (balanced accuracy "
            f"{attempts[0]['balanced_accuracy']:.3f} on its held-out part) and was restarted "
            f"{len(attempts) - 1} time(s) with another seed and a lower learning rate"
            + (": it recovered" if not last["collapsed"] else ": it stayed at chance"))
    folds = pd.DataFrame(rows, columns=folds_columns(table, protocol, options))
    folds["fold"] = pd.array(folds["fold"], dtype=table.folds.dtype)
    acc = folds["accuracy"]
    log(f"{name}: accuracy {acc.mean():.3f} ± {acc.std(ddof=0):.3f} over {len(folds)} "
        f"split(s), fit {fit_total:.1f} s")
    tuned = options.tune and not is_patch_model(name)
    result = CVResult(name, folds, predicted, proba, split_of_row, fit_total, predict_total,
                      importance_seconds=importance_total, params=chosen if tuned else None,
                      failed_candidates={k: c.n_failed for k, c in failed.items()} if tuned else None,
                      restarts=restarts)
    if permuted is not None:
        tested = result.tested
        result.importance = importance.importance_table(
            name, y[tested], proba[tested], permuted[:, :, tested], families, classes,
            clips=None if table.clips is None else table.clips[tested],
        )
    return result


def has_validation(protocol: Protocol) -> bool:
    """Whether the protocol has a validation part to choose on (``holdout`` with validation rows)."""
    validation = protocol.splits[0].validation if protocol.name == "holdout" else None
    return validation is not None and len(validation) > 0


def folds_columns(table: FeatureTable, protocol: Protocol, options: TrainOptions) -> list[str]:
    """The columns of ``folds.csv`` for this table, protocol and options (in order)."""
    columns = list(evaluation.SEGMENT_FOLDS_COLUMNS if table.is_segmented
                   else evaluation.FOLDS_COLUMNS)
    if has_validation(protocol):
        columns.insert(columns.index("accuracy"), "validation_accuracy")
    return columns + ["restarts"] + (["params"] if options.tune else [])


@dataclasses.dataclass(frozen=True)
class SearchTask:
    """The ``--tune`` search of one split: the rows it may see and its inner splits.

    Attributes
    ----------
    rows : np.ndarray of int
        Table rows given to the search: the split's training rows (for
        ``holdout`` also its validation rows), never its test rows.
    cv : list of (train, test)
        Inner splits, positions into ``rows``.
    fit_params : dict
        Fit parameters for ``rows`` (the groups of models with inner splits).
    space : dict
        :func:`classify.tuning.search_space` of the model.
    seed : int
    """

    rows: np.ndarray
    cv: list[tuple[np.ndarray, np.ndarray]]
    fit_params: dict[str, Any]
    space: dict[str, list[Any]]
    seed: int


@dataclasses.dataclass(frozen=True)
class SplitTask:
    """Everything one split's fit needs besides the pipeline and the data.

    Attributes
    ----------
    name : str
        The split's name (``fold3``), for messages.
    train, test : np.ndarray of int
        Table rows to fit on and to predict.
    validation : np.ndarray of int or None
        ``holdout``: rows for early stopping (and, via ``search``, for the
        choice of parameters); never fitted on, never scored.
    fit_params : dict
        Fit parameters for the ``train`` rows (``{"mlp__groups": ...}``).
    search : SearchTask or None
        With ``--tune``.
    families : tuple of np.ndarray
        Column positions of the feature families to permute; empty without
        importance.
    seed : int
        Seed of the split's permutations.
    """

    name: str
    train: np.ndarray
    test: np.ndarray
    validation: np.ndarray | None = None
    fit_params: dict[str, Any] = dataclasses.field(default_factory=dict)
    search: SearchTask | None = None
    families: tuple[np.ndarray, ...] = ()
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class SplitOutcome:
    """What one split's fit returns: test-row probabilities, times, warnings, choices, permutations."""

    proba: np.ndarray
    fit_seconds: float
    predict_seconds: float
    warnings: list[str]
    params: dict[str, Any] | None = None
    permuted: np.ndarray | None = None
    importance_seconds: float = 0.0
    search: tuning.Choice | None = None
    validation_proba: np.ndarray | None = None
    attempts: list[dict[str, Any]] | None = None


def split_tasks(name: str, template: Pipeline, table: FeatureTable, protocol: Protocol,
                options: TrainOptions) -> list[SplitTask]:
    """The :class:`SplitTask` of every split of ``protocol``, in split order."""
    groups = _fit_groups(table)
    families = (tuple(importance.feature_families(table.feature_columns).values())
                if _permutes(name, options) else ())
    space = (tuning.search_space(name, n_features=table.n_features, mlp_layers=options.mlp_layers)
             if options.tune and not is_patch_model(name) else None)
    tasks = []
    for position, split in enumerate(protocol.splits):
        search = None
        if space is not None:
            rows, cv = search_rows(table, protocol, split.train, split.validation, seed=options.seed)
            search = SearchTask(rows, cv, group_fit_params(template, None if groups is None else groups[rows]),
                                space, options.seed)
        tasks.append(SplitTask(
            name=split.name, train=split.train, test=split.test, validation=split.validation,
            fit_params=group_fit_params(template, None if groups is None else groups[split.train]),
            search=search, families=families, seed=_split_seed(options.seed, position),
        ))
    return tasks


def search_rows(
    table: FeatureTable, protocol: Protocol, train: np.ndarray, validation: np.ndarray | None,
    *, seed: int = 0,
) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """The rows a ``--tune`` search may see and its inner splits, by the protocol's rules.

    Parameters
    ----------
    table : FeatureTable
    protocol : Protocol
    train : np.ndarray of int
        Training rows of the split (or all rows but the validation ones,
        for the final model).
    validation : np.ndarray of int or None
        ``holdout``'s validation rows: the one inner split scores on them.

    Returns
    -------
    rows : np.ndarray of int
        ``train`` (then ``validation``).
    cv : list of (train, test)
        Positions into ``rows`` (:func:`classify.splits.inner_splits`).
    """
    y = table.y
    if protocol.name == "holdout" and validation is not None and len(validation):
        rows = np.concatenate([train, validation])
        mask = np.r_[np.zeros(len(train), bool), np.ones(len(validation), bool)]
        return rows, inner_splits("holdout", y[rows], validation=mask)
    fit_groups = _fit_groups(table)
    groups = {
        "folds": fit_groups, "holdout": fit_groups, "group": table.groups,
        "stratified": table.clips, "random": None,
    }[protocol.name]
    folds = table.folds.to_numpy(dtype=object)[train] if protocol.name == "folds" else None
    try:
        cv = inner_splits(protocol.name, y[train], folds=folds,
                          groups=None if groups is None else groups[train], seed=seed)
    except SplitError as exc:
        raise SplitError(f"{exc} (training part of {len(train)} rows)") from None
    return train, cv


def fit_split(
    template: Pipeline,
    X: np.ndarray | TablePatches,
    y: np.ndarray,
    classes: np.ndarray,
    task: SplitTask,
    *,
    threads: int = 1,
) -> SplitOutcome:
    """Fit a clone of ``template`` on a split's training rows and predict its test rows.

    With ``task.search``, the parameters are first chosen by
    :func:`classify.tuning.choose_params` on ``task.search.rows`` (never
    test rows). With ``task.families``, the fitted model then predicts the
    test rows again with each family permuted
    (:func:`classify.importance.permuted_rows`); the model is dropped when
    this function returns.

    Parameters
    ----------
    template : Pipeline
        Unfitted pipeline; it is cloned, never fitted itself.
    X : np.ndarray [shape=(n_rows, n_features)] or TablePatches
        The table's features, or for a CNN the patch of every table row
        (read from the memory-mapped file: only the rows of this split).
    y : np.ndarray [shape=(n_rows,)]
    classes : np.ndarray [shape=(n_classes,)]
        All classes of the table, sorted (column order of the probabilities).
    task : SplitTask
        Rows, fit parameters, search and permutations of the split.
    threads : int
        TensorFlow's thread pools, if this process has not started it yet
        (for the Keras models: MLP and CNN).
        Training leaves it at 1, and BLAS and OpenMP always run
        single-threaded, so a split's fit is the same computation in this
        process or in a worker (``--jobs`` cannot change a result); on these
        small problems extra threads only spin anyway, and on a busy machine
        they make a fit many times slower.

    Returns
    -------
    SplitOutcome
        ``proba`` has shape (len(task.test), n_classes); ``permuted``
        (n_families, n_repeats, len(task.test), n_classes), float32.
    """
    pipe = clone(template)
    params = permuted = choice = None
    importance_seconds = 0.0
    with _thread_limits(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if isinstance(pipe.steps[-1][1], _KERAS_MODELS):
            import_keras(threads=threads)
        t = time.perf_counter()
        if task.search is not None:
            choice = _search(pipe, X, y, task.search, where=task.name)
            params = choice.params
            pipe.set_params(**params)
        validation = None
        if task.validation is not None and len(task.validation):
            validation = (X[task.validation], y[task.validation])
        fit_pipeline(pipe, X[task.train], y[task.train],
                     {**task.fit_params, **_augmentation_inputs(pipe, X, task.train)},
                     where=task.name, validation=validation)
        fit_seconds = time.perf_counter() - t
        t = time.perf_counter()
        proba = _aligned_proba(pipe, X[task.test], classes)
        # holdout: every model is also scored on the validation part, where choices are made.
        validation_proba = (None if validation is None
                            else _aligned_proba(pipe, validation[0], classes))
        predict_seconds = time.perf_counter() - t
        if task.families:
            t = time.perf_counter()
            shuffled = importance.permuted_rows(X[task.test], task.families, importance.N_REPEATS,
                                                np.random.default_rng(task.seed))
            permuted = _aligned_proba(pipe, shuffled, classes).astype(np.float32).reshape(
                len(task.families), importance.N_REPEATS, len(task.test), len(classes))
            importance_seconds = time.perf_counter() - t
    return SplitOutcome(proba, fit_seconds, predict_seconds, _warning_lines(caught), params,
                        permuted, importance_seconds, choice, validation_proba,
                        getattr(pipe.steps[-1][1], "attempts_", None))


def _search(pipe: Pipeline, X: np.ndarray, y: np.ndarray, search: SearchTask, *, where: str
            ) -> tuning.Choice:
    """:func:`classify.tuning.choose_params`; a failure becomes a :class:`ModelError` naming model and split."""
    try:
        return tuning.choose_params(pipe, X[search.rows], y[search.rows], space=search.space,
                                    cv=search.cv, fit_params=search.fit_params, seed=search.seed)
    except ClassifyError:
        raise
    except Exception as exc:  # noqa: BLE001 - any library failure becomes one named message
        text = " ".join(str(exc).split())[:300]
        raise ModelError(f"{pipe.steps[-1][0]}: the --tune search failed on {where}: "
                         f"{type(exc).__name__}: {text}") from None


def failed_candidates_note(name: str, choices: dict[str, tuning.Choice], n_splits: int) -> str | None:
    """One warning when candidates of ``name``'s searches failed to fit, else None."""
    bad = {k: c for k, c in choices.items() if c.n_failed}
    if not bad:
        return None
    n_failed = sum(c.n_failed for c in bad.values())
    n_candidates = sum(c.n_candidates for c in bad.values())
    first = next(c.first_error for c in bad.values())
    return (f"{name}: --tune: {n_failed} of {n_candidates} candidates failed to fit in "
            f"{len(bad)} of {n_splits} search(es) (scored as worst, never chosen; first error: "
            f"{first or 'unknown'}); run.json's tuning.failed_candidates has them per split")


def _run_splits(template: Pipeline, X: np.ndarray | TablePatches, y: np.ndarray,
                classes: np.ndarray, tasks: list[SplitTask], options: TrainOptions):
    """SplitOutcome of every task, in order (in worker processes if jobs > 1).

    A worker gets ``X`` whole: the feature matrix (joblib memory-maps a
    large one), or a :class:`TablePatches`, which is only a folder and row
    numbers; each worker reads the patches of its split itself.
    """
    jobs = min(options.effective_jobs(), len(tasks))
    if jobs <= 1:
        return (fit_split(template, X, y, classes, task) for task in tasks)
    # One single-threaded fit per core beats one multi-threaded fit at a time
    # (small problems scale badly over threads); n_jobs does not change results.
    # The workers start TensorFlow themselves, with fit_split's one thread.
    template = clone(template).set_params(
        **{k: 1 for k in template.get_params() if k.endswith("n_jobs")}
    )
    calls = (delayed(fit_split)(template, X, y, classes, task) for task in tasks)
    return Parallel(n_jobs=jobs, backend="loky", return_as="generator")(calls)


def _quiet_restarts(outcomes):
    """Yield from ``outcomes`` without loky's note that it replaced a worker.

    TensorFlow keeps ~15 MB per Keras fit; after 300 MB (a few tuned MLP
    splits) loky replaces the worker cleanly, losing no job, and warns.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="A worker stopped while some jobs were given",
                                category=UserWarning)
        yield from outcomes


def fit_pipeline(pipe: Pipeline, X: np.ndarray, y: np.ndarray, fit_params: dict[str, Any], *,
                 where: str, validation: tuple[np.ndarray, np.ndarray] | None = None) -> Pipeline:
    """Fit ``pipe`` in place; any failure becomes a :class:`ModelError` naming model and split.

    ``validation`` (``(X_val, y_val)``, the ``holdout`` protocol's
    validation rows) goes to a final step whose ``fit`` takes ``X_val``
    (the MLP's and HGB's early stopping), through the fitted scaler; the
    other models do not use it. The scaler is fitted on ``X`` only.
    """
    name, model = pipe.steps[-1]
    try:
        if validation is not None and "X_val" in inspect.signature(model.fit).parameters:
            X_val = validation[0]
            if len(pipe.steps) > 1:
                head = pipe[:-1].fit(X, y)  # the same step objects: fits pipe's scaler
                X, X_val = head.transform(X), head.transform(X_val)
            own = {key.split("__", 1)[1]: value for key, value in fit_params.items()
                   if key.startswith(f"{name}__")}
            model.fit(X, y, X_val=X_val, y_val=validation[1], **own)
            return pipe
        return pipe.fit(X, y, **fit_params)
    except ClassifyError:
        raise
    except Exception as exc:  # noqa: BLE001 - any library failure becomes one named message
        raise ModelError(f"{name} could not be fitted on {where}: {type(exc).__name__}: {exc}") from None


def _split_scores(table: FeatureTable, test: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    """Scores of one split's test rows: per row, or per clip (plus window accuracy) on a segment table."""
    classes, y = table.classes, table.y[test]
    scores = evaluation.split_scores(y, classes[np.argmax(proba, axis=1)])
    if not table.is_segmented:
        return scores
    ids, mean, first, _ = evaluation.aggregate_clips(table.clips[test], proba)
    clip = evaluation.split_scores(y[first], classes[np.argmax(mean, axis=1)])
    return {"n_test_clips": len(ids), **clip, "window_accuracy": scores["accuracy"]}


def _model_inputs(name: str, table: FeatureTable, patches: TablePatches | None
                  ) -> np.ndarray | TablePatches:
    """What model ``name`` learns from: the feature matrix, or the patches of a CNN."""
    if not is_patch_model(name):
        return table.X
    if patches is None or len(patches) != table.n_rows:
        raise UsageError(f"{name} learns from log-mel patches: pass the patches of the table's "
                         "rows (classify.table_patches.attach_patches)")
    return patches


def _augmentation_inputs(pipe: Pipeline, X: np.ndarray | TablePatches, rows: np.ndarray
                         ) -> dict[str, Any]:
    """Fit parameters of a CNN that augments: stereo rows of ``rows``, the channels and noise maps."""
    name, model = pipe.steps[-1]
    if not isinstance(X, TablePatches) or getattr(model, "augment", None) is None:
        return {}
    return X.fit_params(name, rows)


def _permutes(name: str, options: TrainOptions) -> bool:
    """Whether model ``name`` gets the permutation importance (not the CNNs: no feature columns)."""
    return options.importance and not is_patch_model(name)


def _split_seed(seed: int, position: int) -> int:
    # One stream per split, the same wherever the split runs.
    return int(np.random.SeedSequence([seed, position]).generate_state(1)[0])


@contextlib.contextmanager
def _thread_limits():
    # BLAS and OpenMP pools spin while they wait: on problems this small one
    # thread is as fast as two, and on a busy machine spinning threads make a
    # fit ten times slower (measured: HistGradientBoosting 18 s -> 140 s).
    # Parallelism comes from one process per split instead.
    with threadpool_limits(limits=1):
        yield


def refit_and_save(result: TrainResult, *, log: Log = print, warn: Log | None = None) -> Path | None:
    """Refit the final model and save it; a refit that ends at chance is never saved.

    A Keras model checks its final refit on the part of the rows it holds
    out for early stopping (restarting a collapsed fit, as in the splits).
    If it still ends at chance it is not saved: the next model of the
    leaderboard is refitted and saved instead (unless ``--final`` named
    the model), and ``run.json``'s ``final_fallback`` says so.
    """
    warn = warn or _stderr_warning
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
    pipe = options.pipeline(name, n_classes=len(table.classes))
    groups = _fit_groups(table)
    fit_params = group_fit_params(pipe, groups)
    with _final_fit(result, warn):
        if options.tune:
            validation = result.protocol.splits[0].validation if result.protocol.name == "holdout" else None
            train = np.setdiff1d(np.arange(table.n_rows), [] if validation is None else validation)
            rows, cv = search_rows(table, result.protocol, train, validation, seed=options.seed)
            space = tuning.search_space(name, n_features=table.n_features, mlp_layers=options.mlp_layers)
            search = SearchTask(rows, cv, group_fit_params(pipe, None if groups is None else groups[rows]),
                                space, options.seed)
            choice = _search(pipe, table.X, table.y, search, where="all rows (final fit)")
            params = choice.params
            result.final_failed_candidates = choice.n_failed
            note = failed_candidates_note(name, {"final": choice}, 1)
            if note:
                warn(note)
            pipe.set_params(**params)
            result.final_params = tuning.display_params(name, params)
            log(f"final model {name}: --tune chose {json.dumps(_json_safe(result.final_params))}")
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
    with _thread_limits(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for line in _warning_lines(caught):
        warn(f"{result.final_model} (final fit): {line}")
    result.timings["final_fit_seconds"] = time.perf_counter() - t


def _refit_and_save_cnn(result: TrainResult, bundle_dir: Path, *, log: Log, warn: Log) -> Path:
    """Refit CNN ``result.final_model`` on the patches of all rows; save it as a CNN bundle."""
    table, name, patches = result.table, result.final_model, result.patches
    pipe = result.options.pipeline(name, n_classes=len(table.classes), patch_params=patches.params)
    rows = np.arange(table.n_rows)
    fit_params = {**group_fit_params(pipe, _fit_groups(table)), **_augmentation_inputs(pipe, patches, rows)}
    with _final_fit(result, warn):
        fit_pipeline(pipe, patches[rows], table.y, fit_params, where="all rows (final fit)")
    _check_final_fit(result, pipe)
    save_bundle(bundle_dir, model_name=name, estimator=pipe,
                class_names=[str(c) for c in pipe.classes_], patch_params=patches.params,
                patches_meta=_patches_provenance(result))
    path = result.out_dir / rundir.BUNDLE_DIR
    log(f"final model {name} refitted on the patches of all {table.n_rows} clips and saved to {path}")
    return path


def unmatched_note(unmatched: pd.DataFrame, n_rows: int, out_dir: Path | None = None) -> str:
    """One sentence: how many clips were left out of the run for want of a patch or a table row."""
    counts = unmatched["missing_from"].value_counts()
    parts = []
    if counts.get("patches"):
        parts.append(f"{counts['patches']} table row(s) have no patch")
    if counts.get("features"):
        parts.append(f"{counts['features']} patch(es) have no table row")
    where = f" ({out_dir / rundir.UNMATCHED})" if out_dir is not None else f" ({rundir.UNMATCHED})"
    return (f"{' and '.join(parts)}: every model is trained and scored on the {n_rows} clips "
            f"that have both; the others are listed in{where}")


def _patches_provenance(result: TrainResult) -> dict[str, Any] | None:
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


def leaderboard_text(result: TrainResult) -> str:
    """The leaderboard as an aligned plain-text table, with the protocol above it."""
    board = result.leaderboard.copy()
    for col in ("accuracy_mean", "accuracy_std", "window_accuracy_mean", "balanced_accuracy_mean",
                "macro_f1_mean"):
        if col in board.columns:
            board[col] = board[col].map("{:.3f}".format)
    board["fit_seconds"] = board["fit_seconds"].map("{:.1f}".format)
    tuned = ", tuned with --tune" if result.options.tune else ""
    lines = [f"leaderboard ({result.protocol.label}, {result.protocol.n_splits} split(s){tuned}):",
             board.to_string(index=False)]
    if result.table.is_segmented:
        lines.append(f"scores per clip ({result.table.n_clips} clips; mean probability of their "
                     f"windows); window_accuracy_mean per window ({result.table.n_rows} windows)")
    if result.protocol.leaky:
        lines.append(f"WARNING: random protocol, {LEAKY_NOTE}; these scores are optimistic.")
    if result.unmatched is not None and len(result.unmatched):
        lines.append(unmatched_note(result.unmatched, result.table.n_rows))
    saved = f"saved to {result.bundle_dir}" if result.bundle_dir else "not saved"
    lines.append(f"final model: {result.final_model} ({saved}); outputs in {result.out_dir}")
    return "\n".join(lines)


# ---------------------------------------------------------------- outputs


def write_run(result: TrainResult) -> None:
    """Write every CSV and figure of a run (report.md and run.json come after the bundle)."""
    out = result.folder
    out.mkdir(parents=True, exist_ok=True)
    protocol_note = result.protocol.label
    matrices = _confusions(result)
    board = result.leaderboard.assign(
        protocol=protocol_note,
        selection=[model_selection(result, m) for m in result.leaderboard["model"]])
    rundir.write_tables(
        out, leaderboard=board, folds=result.folds,
        per_class=result.per_class.assign(protocol=protocol_note),
        predictions=predictions_frame(result), confusions=matrices,
        clip_predictions=clip_predictions_frame(result) if result.table.is_segmented else None,
        importance=None if result.importance is None else result.importance.round(6),
        unmatched=result.unmatched if result.unmatched is not None and len(result.unmatched) else None,
    )
    _write_figures(result, matrices)


def predictions_frame(result: TrainResult) -> pd.DataFrame:
    """Out-of-fold predictions of every model, long format (one row per row x model).

    Columns ``path, [segment, segment_start_s, segment_end_s,] label, fold,
    split, model, predicted, confidence, prob_<class>...``: ``fold`` is the
    row's fold in the table (empty when it has none), ``split`` names the
    split that held the row out. On a segment table a row is a window.
    """
    table, classes = result.table, result.table.classes
    frames = []
    for name, r in result.results.items():
        rows = r.tested
        proba = r.proba[rows]
        frame = pd.DataFrame({"path": table.row_names[rows]})
        if table.is_segmented:
            for column in SEGMENT_COLUMNS:
                frame[column] = table.df[column].to_numpy()[rows]
        frame = frame.assign(
            label=table.y[rows], fold=table.folds[rows].reset_index(drop=True),
            split=r.split_of_row[rows], model=name, predicted=r.predicted[rows],
            confidence=proba.max(axis=1),
        )
        probs = pd.DataFrame(proba, columns=[rundir.probability_column(c) for c in classes])
        frames.append(pd.concat([frame, probs], axis=1))
    return pd.concat(frames, ignore_index=True).round(6)


def clip_predictions_frame(result: TrainResult) -> pd.DataFrame:
    """Out-of-fold predictions per clip of a segment table, one row per clip x model.

    Columns ``path, label, fold, split, model, n_segments, predicted,
    confidence, prob_<class>...``: the probabilities are the means over the
    clip's tested windows, ``n_segments`` how many there were.
    """
    table, classes = result.table, result.table.classes
    frames = []
    for name, r in result.results.items():
        tested = np.flatnonzero(r.tested)
        ids, mean, first, counts = evaluation.aggregate_clips(table.clips[tested], r.proba[tested])
        rows = tested[first]
        frame = pd.DataFrame({
            "path": ids, "label": table.y[rows], "fold": table.folds[rows].reset_index(drop=True),
            "split": r.split_of_row[rows], "model": name, "n_segments": counts,
            "predicted": classes[np.argmax(mean, axis=1)], "confidence": mean.max(axis=1),
        })
        probs = pd.DataFrame(mean, columns=[rundir.probability_column(c) for c in classes])
        frames.append(pd.concat([frame, probs], axis=1))
    return pd.concat(frames, ignore_index=True).round(6)


def report_markdown(result: TrainResult) -> str:
    """``report.md``: protocol, leaderboard, per-split and per-class tables, image links."""
    t, p, final = result.table, result.protocol, result.final_model
    saved = (f", refitted on all rows and saved in `{result.bundle_dir.name}/`"
             if result.bundle_dir else " (no bundle saved)")
    # data/output/<name>/features/features.parquet -> "<name>"
    name = t.path.parent.parent.name if t.path.parent.name == "features" else t.path.name
    lines = [f"# Training run: {name}", ""]
    if p.leaky:
        banner = (f"> **Leaky protocol.** `--cv random` was requested: {LEAKY_NOTE}. The scores "
                  "below are optimistic; use the default protocol for honest numbers.")
        lines += [banner, ""]
    rows = f"Rows: {t.n_rows}"
    if t.is_segmented:
        rows = f"Rows: {t.n_rows} windows of {t.n_clips} clips (scores per clip, `window_accuracy` per window)"
    lines += [
        f"- Table: `{t.path}`",
        f"- {rows}, classes: {len(t.classes)}, features: {t.n_features}",
        f"- Feature columns: {t.feature_source}",
        f"- Protocol: **{p.label}**, {p.n_splits} split(s): {p.reason}.",
        f"- Final model: **{final}**{saved}",
        *[f"- Note: {w}" for w in p.warnings],
    ]
    if result.patches is not None:
        shape = "x".join(map(str, result.patches.params.shape))
        lines.append(f"- {', '.join(result.options.patch_models)}: learn from log-mel patches "
                     f"({shape}, {result.patches.params.duration:g} s) in `{result.patches.folder}`, "
                     "not from the feature columns; same clips and splits as the other models")
        if result.unmatched is not None and len(result.unmatched):
            lines.append(f"- Left out: {unmatched_note(result.unmatched, t.n_rows)}")
    if result.options.tune:
        chosen = (json.dumps(_json_safe(result.final_params)) if result.final_params
                  else "not tuned, a CNN" if is_patch_model(final) else "not refitted")
        lines.append(f"- Tuned with `--tune` inside every training part (chosen parameters: "
                     f"`params` in `{rundir.FOLDS}`); final model: `{chosen}`")
    lines += ["", "## The number to quote", "", selection_summary(result)["honest"], "",
              _markdown(quote_table(result)), ""]
    refs = references_for((t.features_meta or {}).get("layout"), p.name)
    if refs is not None:
        lines += ["### Published references for this dataset", ""]
        if not refs["same_protocol"]:
            lines += [f"Our protocol here is `{p.name}`, not theirs: compare with care.", ""]
        lines += [_markdown(pd.DataFrame(refs["references"])[["what", "score", "protocol",
                                                               "source", "url"]]), ""]
    accuracy = (result.folds.pivot(index="split", columns="model", values="accuracy")
                .reindex(index=[s.name for s in p.splits], columns=list(result.results)))
    lines += [
        "", "## Leaderboard", "",
        "Means over the held-out splits; `fit_seconds` is the total over all splits.", "",
        _markdown(result.leaderboard), "",
        "## Scores per split", "", f"![Accuracy per split]({rundir.FOLDS_FIGURE})", "",
        _markdown(accuracy.rename_axis("accuracy of split").reset_index()), "",
        f"## Per-class scores of {final} (out-of-fold)", "", "All models: `per_class.csv`.", "",
        _markdown(result.per_class[result.per_class["model"] == final].drop(columns="model")), "",
    ]
    if result.importance is not None:
        overall = result.importance[result.importance["class"] == importance.ALL_CLASSES]
        permuted = [m for m in result.models if not is_patch_model(m)]
        table = (overall.pivot(index="family", columns="model", values="importance_mean")
                 .reindex(columns=permuted)
                 .sort_values(final if final in permuted else permuted[0], ascending=False))
        lines += [
            "## Which features matter (grouped permutation importance)", "",
            (f"Drop in out-of-fold {overall['metric'].iloc[0].replace('_', ' ')} when a feature "
             f"family is shuffled within each test split ({importance.N_REPEATS} repeats); per "
             f"class: `{rundir.IMPORTANCE}`."), "",
            f"![Importance of the feature families]({rundir.IMPORTANCE_FIGURE})", "",
            _markdown(table.reset_index()), "",
        ]
    skipped = _importance_skipped(result)
    if skipped:
        lines += [(f"Permutation importance was not computed for {', '.join(skipped)}: "
                   f"{IMPORTANCE_SKIPPED_REASON}."), ""]
    lines += ["## Confusion matrices (out-of-fold, rows = true class)", ""]
    for name in result.results:
        image = rundir.confusion_file(name, "normalized", ".png")
        counts, counts_png = rundir.confusion_file(name, "counts"), rundir.confusion_file(name, "counts", ".png")
        lines += [f"### {name}", "", f"![{name}, row-normalised]({image})", "",
                  f"Counts: [`{counts}`]({counts}), [image]({counts_png})", ""]
    return "\n".join(lines)


def model_selection(result: TrainResult, model: str) -> str:
    """How a leaderboard row's model (or the nested procedure) was chosen or set, in words."""
    if model == NESTED:
        return "the model chosen inside each training part (" + (
            "on the validation part" if has_validation(result.protocol)
            else "inner splits, by the protocol's rules") + ")"
    how = ("parameters tuned inside each training part" if result.options.tune
           and not is_patch_model(model) else "fixed parameters")
    if has_validation(result.protocol) and model in ("mlp", "hgb", *PATCH_MODELS):
        how += "; early stopping on the validation part"
    return how


def quote_table(result: TrainResult) -> pd.DataFrame:
    """Per leaderboard row: protocol, how it was chosen, the score with its spread, the final model."""
    board = result.leaderboard
    table = pd.DataFrame({
        "model": board["model"],
        "protocol": result.protocol.label,
        "selection": [model_selection(result, m) for m in board["model"]],
    })
    if "validation_accuracy" in board.columns:
        table["validation_accuracy"] = board["validation_accuracy"].map("{:.3f}".format)
    spread = "" if result.protocol.n_splits > 1 else " (one split)"
    table["accuracy"] = [f"{m:.3f} ± {sd:.3f}{spread}" if spread == "" else f"{m:.3f}{spread}"
                         for m, sd in zip(board["accuracy_mean"], board["accuracy_std"])]
    table["saved"] = ["final model" if m == result.final_model else "" for m in board["model"]]
    return table


def run_info(result: TrainResult) -> rundir.RunInfo:
    """What ``run.json`` records: provenance, protocol, parameters, versions, timings."""
    t, options = result.table, result.options
    patch_params = None if result.patches is None else result.patches.params
    models = {name: _json_safe(_step_params(options.pipeline(name, patch_params=patch_params)))
              for name in result.models}
    tuned = None
    if options.tune:
        searched = [name for name in result.models if not is_patch_model(name)]
        tuned = {
            "search": f"HalvingGridSearchCV, factor {tuning.FACTOR}, on rows, scored by accuracy",
            "spaces": {name: _json_safe(tuning.search_space(name, n_features=t.n_features,
                                                            mlp_layers=options.mlp_layers))
                       for name in searched},
            "chosen": {name: dict(zip(result.results[name].folds["split"],
                                      _json_safe(result.results[name].params)))
                       for name in searched},
            "final": _json_safe(result.final_params),
            "not_tuned": list(options.patch_models),
            "failed_candidates": {
                name: {**(result.results[name].failed_candidates or {}),
                       **({"final": result.final_failed_candidates}
                          if name == result.final_model and result.final_failed_candidates is not None
                          else {})}
                for name in searched},
        }
    imp = None
    if result.importance is not None or (options.importance and options.patch_models):
        families = importance.feature_families(t.feature_columns)
        imp = {"file": rundir.IMPORTANCE if result.importance is not None else None,
               "n_repeats": importance.N_REPEATS,
               "families": {f: [t.feature_columns[i] for i in cols] for f, cols in families.items()},
               "skipped": {name: IMPORTANCE_SKIPPED_REASON for name in _importance_skipped(result)}}
    segment = None
    if t.is_segmented:
        segment = {"settings": (t.features_meta or {}).get("segment"), "n_clips": t.n_clips,
                   "scores": "per clip: mean window probability, argmax; window_accuracy per window",
                   "clip_predictions": rundir.CLIP_PREDICTIONS}
    return rundir.RunInfo(
        table=str(t.path.resolve()),
        table_sha256=file_sha256(t.path),
        features_json=t.features_meta,
        protocol=result.protocol.to_dict() | {"label": result.protocol.label},
        params={"options": _json_safe(dataclasses.asdict(options)),
                "out": str(result.out_dir), "models": models},
        models=result.models,
        best_model=next(str(m) for m in result.leaderboard["model"] if m != NESTED),
        final_model=result.final_model,
        model_bundle=str(result.bundle_dir) if result.bundle_dir else None,
        classes=[str(c) for c in t.classes],
        feature_columns=list(t.feature_columns),
        feature_source=t.feature_source,
        path_column=t.path_col,
        versions=_versions(),
        timings=_json_safe(result.timings),
        n_rows=t.n_rows,
        n_features=t.n_features,
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        tuning=tuned,
        segment=segment,
        importance=imp,
        patches=_patches_provenance(result),
        selection=selection_summary(result),
        excluded_columns=result.excluded or None,
        restarts=_restarts(result),
        final_fallback=result.final_fallback,
    )


def _restarts(result: TrainResult) -> dict[str, Any] | None:
    """Model -> split -> attempts of the Keras fits that ended at chance and were restarted."""
    found = {name: dict(r.restarts) for name, r in result.results.items() if r.restarts}
    if result.final_attempts and len(result.final_attempts) > 1:
        found.setdefault(result.final_model, {})["final"] = result.final_attempts
    return _json_safe(found) or None


def selection_summary(result: TrainResult) -> dict[str, Any]:
    """How the final model was chosen, and which number is the honest estimate (one sentence)."""
    p, board, final = result.protocol, result.leaderboard, result.final_model
    row = board[board["model"] == final].iloc[0]
    summary: dict[str, Any] = {"select": result.options.select, **(result.selection or {})}
    if result.options.final:
        summary["rule"] = f"--final {final}: named by the user"
    if p.leaky:
        summary.setdefault("rule", "the best mean accuracy")
        summary["honest"] = (f"No number here is an honest estimate: --cv random is {LEAKY_NOTE}, "
                             "so every score is optimistic; use the default protocol.")
        return summary
    if has_validation(p):
        summary.setdefault("rule", "the best validation accuracy (the dataset's validation part); "
                                   "the test part is used once, to report")
        summary.update(honest_model=final, honest_accuracy=float(row["accuracy_mean"]))
        summary["honest"] = (f"The honest estimate is the test accuracy of {final}, "
                             f"{row['accuracy_mean']:.3f}: it was chosen on the validation part, "
                             "and no choice ever saw the test part.")
        return summary
    if p.name == "holdout":
        summary.setdefault("rule", "the best test accuracy: the table has no validation rows")
    else:
        summary.setdefault("rule", "the best mean accuracy over the same splits")
    if NESTED in result.results:
        nested = board[board["model"] == NESTED].iloc[0]
        summary.update(honest_model=NESTED, honest_accuracy=float(nested["accuracy_mean"]))
        summary["honest"] = (
            f"The honest estimate of the whole procedure (pick the best model, then fit it) is "
            f"the nested row, {nested['accuracy_mean']:.3f} ± {nested['accuracy_std']:.3f}: the "
            "model chosen inside each training part, scored on the part it never saw.")
        return summary
    best = board[board["model"] != NESTED].iloc[0]
    summary["honest"] = (
        f"Each model's mean is an honest estimate for that model; the best of "
        f"{len(result.models)} ({best['model']}, {best['accuracy_mean']:.3f}) is optimistic, since "
        "it was picked on the same splits it is scored on: train with --select nested for the "
        "number of the whole procedure.")
    return summary


# ---------------------------------------------------------------- helpers


def _importance_skipped(result: TrainResult) -> list[str]:
    """The models the permutation importance was asked for but does not apply to (the CNNs)."""
    return list(result.options.patch_models) if result.options.importance else []


def _fit_groups(table: FeatureTable) -> np.ndarray | None:
    """Groups for the models' inner splits (see :func:`group_fit_params`); a row without one is its own."""
    groups = table.groups
    if groups is None:
        return None
    groups = groups.astype(str)
    blank = groups == ""
    groups[blank] = [f"\0row{i}" for i in np.flatnonzero(blank)]
    return groups


def _warning_lines(caught: list) -> list[str]:
    """Distinct first lines of the user-facing warnings caught during a fit."""
    lines = [
        f"{w.category.__name__}: {(str(w.message).strip().splitlines() or [''])[0]}"
        for w in caught if issubclass(w.category, (UserWarning, RuntimeWarning))
    ]
    return list(dict.fromkeys(lines))


def _aligned_proba(pipe, X: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """predict_proba with columns in table class order (a split may miss a class)."""
    p = pipe.predict_proba(X)
    full = np.zeros((len(X), len(classes)))
    full[:, np.searchsorted(classes, pipe.classes_)] = p
    return full


def _scored(table: FeatureTable, r: CVResult) -> tuple[np.ndarray, np.ndarray]:
    """(true, predicted) labels at the level of the scores: tested rows, or clips of a segment table."""
    tested = np.flatnonzero(r.tested)
    if not table.is_segmented:
        return table.y[tested], r.predicted[tested]
    _, mean, first, _ = evaluation.aggregate_clips(table.clips[tested], r.proba[tested])
    return table.y[tested[first]], table.classes[np.argmax(mean, axis=1)]


def _per_class(results: dict[str, CVResult], table: FeatureTable) -> pd.DataFrame:
    frames = [evaluation.per_class_scores(name, *_scored(table, r), table.classes)
              for name, r in results.items()]
    return pd.concat(frames, ignore_index=True)


def _confusions(result: TrainResult) -> dict[str, dict[str, pd.DataFrame]]:
    out = {}
    for name, r in result.results.items():
        counts, normalized = evaluation.confusion_tables(*_scored(result.table, r), result.table.classes)
        out[name] = {"counts": counts, "normalized": normalized}
    return out


def _write_figures(result: TrainResult, matrices: dict) -> None:
    note = result.protocol.label
    level = "per clip, " if result.table.is_segmented else ""
    for name, kinds in matrices.items():
        for kind, matrix in kinds.items():
            what = "row-normalised" if kind == "normalized" else "counts"
            fig = plots.confusion_figure(
                matrix, title=f"{name}: confusion matrix, {what} ({level}out-of-fold, {note})",
                normalized=kind == "normalized",
            )
            plots.save_figure(fig, result.folder / rundir.confusion_file(name, kind, ".png"))
    fig = plots.split_scores_figure(
        result.folds, metric="accuracy", title=f"Accuracy per held-out split ({level}{note})"
    )
    plots.save_figure(fig, result.folder / rundir.FOLDS_FIGURE)
    if result.importance is not None:
        plots.save_figure(plots.importance_figure(
            result.importance, title=f"Importance of the feature families (out-of-fold, {note})"),
            result.folder / rundir.IMPORTANCE_FIGURE)


def _markdown(df: pd.DataFrame) -> str:
    """A DataFrame as a GitHub-flavoured Markdown table (floats to 3 decimals)."""
    def cell(v: Any) -> str:
        if isinstance(v, (float, np.floating)):
            return f"{v:.3f}"
        return str(v).replace("|", "\\|")

    header = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _step_params(pipe) -> dict[str, Any]:
    # Nested parameters only (``svm__C``); the step objects themselves are repeats.
    return {k: v for k, v in pipe.get_params(deep=True).items() if "__" in k}


def _json_safe(value: Any) -> Any:
    if hasattr(value, "to_dict") and not isinstance(value, (pd.DataFrame, pd.Series)):
        return _json_safe(value.to_dict())  # Augmentation, PatchParams
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in _VERSIONED:
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


def _columns_match_params(table: FeatureTable) -> bool:
    from features.compute import feature_columns
    from features.errors import FeaturesError
    from features.params import FeatureParams

    try:
        params = FeatureParams.from_dict(dict(table.features_meta.get("params") or {}))
    except (FeaturesError, TypeError, AttributeError):
        return False
    return feature_columns(params) == list(table.feature_columns)


def _stderr_warning(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


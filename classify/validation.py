"""Cross-validation: fit a fresh clone of a model on each split's training rows, predict its test rows.

:func:`cross_validate_model` runs one model over the protocol's splits,
in worker processes or here, with the same seeds and single-threaded
numerics wherever a split runs (:func:`fit_split`), so scores do not depend
on ``--jobs``. Everything that changes what a split does is inside
:func:`fit_split`, so the outer test rows only ever reach a fitted model's
``predict_proba``:

* ``--tune``: the model's parameters are chosen by a search on the split's
  training rows (:mod:`classify.tuning`), on inner splits made by the
  protocol's rules (:meth:`classify.splits.Protocol.search_splits`).
* ``holdout``: the model is fitted on the train rows and early-stops on the
  validation rows.
* grouped permutation importance: the split's fitted model predicts its
  test rows again with each feature family shuffled
  (:mod:`classify.importance`).

A CNN model learns from the clips' log-mel patches instead of the feature
columns; a worker gets the patches folder and row numbers and reads the
rows it needs from the memory-mapped ``patches.npy``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from . import evaluation, importance, registry, tuning
from .cnn import KerasCNNClassifier
from .errors import ClassifyError, ModelError, UsageError
from .keras_base import import_keras
from .log import Log, stderr_warning
from .mlp import KerasMLPClassifier
from .models import group_fit_params
from .options import TrainOptions
from .registry import is_patch_model
from .results import CVResult
from .splits import Protocol
from .table_patches import TablePatches
from .tables import FeatureTable
from .values import json_safe

# Final steps that start TensorFlow: their workers size its thread pools first.
_KERAS_MODELS = (KerasMLPClassifier, KerasCNNClassifier)


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
    X = model_inputs(name, table, patches)
    template = options.pipeline(name, n_classes=len(classes), n_features=table.n_features,
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
    outcomes = run_splits(template, X, y, classes, tasks, options)
    for split, outcome in zip(protocol.splits, quiet_restarts(outcomes)):
        fit_total += outcome.fit_seconds
        predict_total += outcome.predict_seconds
        importance_total += outcome.importance_seconds
        proba[split.test] = outcome.proba
        predicted[split.test] = classes[np.argmax(outcome.proba, axis=1)]
        split_of_row[split.test] = split.name
        if permuted is not None:
            permuted[:, :, split.test] = outcome.permuted
        scores = scores_of_rows(table, split.test, outcome.proba)
        row = {"model": name, "split": split.name, "fold": split.fold, "n_train": len(split.train),
               "n_test": len(split.test), **scores, "fit_seconds": outcome.fit_seconds,
               "restarts": len(outcome.attempts or [None]) - 1}
        if outcome.validation_proba is not None:
            row["validation_accuracy"] = scores_of_rows(table, split.validation,
                                                       outcome.validation_proba)["accuracy"]
        if outcome.attempts and len(outcome.attempts) > 1:
            restarts[split.name] = outcome.attempts
        if outcome.params is not None:
            chosen.append(tuning.display_params(name, outcome.params))
            row["params"] = json.dumps(json_safe(chosen[-1]), sort_keys=True)
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
        (warn or stderr_warning)(f"{name}: {line} (in {count} of {len(protocol.splits)} splits)")
    note = failed_candidates_note(name, failed, len(protocol.splits))
    if note:
        (warn or stderr_warning)(note)
    for split_name, attempts in restarts.items():
        last = attempts[-1]
        (warn or stderr_warning)(
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


def folds_columns(table: FeatureTable, protocol: Protocol, options: TrainOptions) -> list[str]:
    """The columns of ``folds.csv`` for this table, protocol and options (in order)."""
    columns = list(evaluation.SEGMENT_FOLDS_COLUMNS if table.is_segmented
                   else evaluation.FOLDS_COLUMNS)
    if protocol.has_validation:
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
        :func:`classify.registry.search_space` of the model.
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
    groups = protocol.recordings
    families = (tuple(importance.feature_families(table.feature_columns).values())
                if _permutes(name, options) else ())
    space = (registry.search_space(name, n_features=table.n_features, mlp_layers=options.mlp_layers)
             if options.tune and not is_patch_model(name) else None)
    tasks = []
    for position, split in enumerate(protocol.splits):
        search = None
        if space is not None:
            rows, cv = protocol.search_splits(split.train, split.validation, seed=options.seed)
            search = SearchTask(rows, cv, group_fit_params(template, None if groups is None else groups[rows]),
                                space, options.seed)
        tasks.append(SplitTask(
            name=split.name, train=split.train, test=split.test, validation=split.validation,
            fit_params=group_fit_params(template, None if groups is None else groups[split.train]),
            search=search, families=families, seed=split_seed(options.seed, position),
        ))
    return tasks


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
    with thread_limits(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if isinstance(pipe.steps[-1][1], _KERAS_MODELS):
            import_keras(threads=threads)
        t = time.perf_counter()
        if task.search is not None:
            choice = run_search(pipe, X, y, task.search, where=task.name)
            params = choice.params
            pipe.set_params(**params)
        validation = None
        if task.validation is not None and len(task.validation):
            validation = (X[task.validation], y[task.validation])
        fit_pipeline(pipe, X[task.train], y[task.train],
                     {**task.fit_params, **augmentation_inputs(pipe, X, task.train)},
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
    return SplitOutcome(proba, fit_seconds, predict_seconds, warning_lines(caught), params,
                        permuted, importance_seconds, choice, validation_proba,
                        getattr(pipe.steps[-1][1], "attempts_", None))


def run_search(pipe: Pipeline, X: np.ndarray, y: np.ndarray, search: SearchTask, *, where: str
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


def run_splits(template: Pipeline, X: np.ndarray | TablePatches, y: np.ndarray,
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


def quiet_restarts(outcomes):
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


def scores_of_rows(table: FeatureTable, test: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    """Scores of one split's test rows: per row, or per clip (plus window accuracy) on a segment table."""
    classes, y = table.classes, table.y[test]
    scores = evaluation.split_scores(y, classes[np.argmax(proba, axis=1)])
    if not table.is_segmented:
        return scores
    ids, mean, first, _ = evaluation.aggregate_clips(table.clips[test], proba)
    clip = evaluation.split_scores(y[first], classes[np.argmax(mean, axis=1)])
    return {"n_test_clips": len(ids), **clip, "window_accuracy": scores["accuracy"]}


def model_inputs(name: str, table: FeatureTable, patches: TablePatches | None
                  ) -> np.ndarray | TablePatches:
    """What model ``name`` learns from: the feature matrix, or the patches of a CNN."""
    if not is_patch_model(name):
        return table.X
    if patches is None or len(patches) != table.n_rows:
        raise UsageError(f"{name} learns from log-mel patches: pass the patches of the table's "
                         "rows (classify.table_patches.attach_patches)")
    return patches


def augmentation_inputs(pipe: Pipeline, X: np.ndarray | TablePatches, rows: np.ndarray
                         ) -> dict[str, Any]:
    """Fit parameters of a CNN that augments: stereo rows of ``rows``, the channels and noise maps."""
    name, model = pipe.steps[-1]
    if not isinstance(X, TablePatches) or getattr(model, "augment", None) is None:
        return {}
    return X.fit_params(name, rows)


def _permutes(name: str, options: TrainOptions) -> bool:
    """Whether model ``name`` gets the permutation importance (not the CNNs: no feature columns)."""
    return options.importance and not is_patch_model(name)


def split_seed(seed: int, position: int) -> int:
    # One stream per split, the same wherever the split runs.
    return int(np.random.SeedSequence([seed, position]).generate_state(1)[0])


@contextlib.contextmanager
def thread_limits():
    # BLAS and OpenMP pools spin while they wait: on problems this small one
    # thread is as fast as two, and on a busy machine spinning threads make a
    # fit ten times slower (measured: HistGradientBoosting 18 s -> 140 s).
    # Parallelism comes from one process per split instead.
    with threadpool_limits(limits=1):
        yield


def warning_lines(caught: list) -> list[str]:
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

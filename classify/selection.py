"""Which model is the answer, and which number to quote for it.

``--select best`` takes the leaderboard's best (by validation accuracy
under ``holdout``); ``--select nested`` also scores that procedure itself,
choosing a model inside every outer training part without letting the
choice see the outer test part (:func:`nested_selection`). The summary
(:func:`selection_summary`) says which row of the leaderboard is the
honest estimate, for ``run.json`` and the report.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .log import Log
from .models import group_fit_params
from .options import TrainOptions
from .registry import MODELS, is_patch_model
from .results import CVResult, TrainResult
from .rundir import NESTED
from .splits import LEAKY_NOTE, Protocol
from .table_patches import TablePatches
from .tables import FeatureTable
from .validation import (
    SplitTask,
    model_inputs,
    quiet_restarts,
    run_splits,
    scores_of_rows,
    split_seed,
)
from .values import json_safe


def nested_selection(table: FeatureTable, protocol: Protocol, options: TrainOptions,
                     results: dict[str, CVResult], *, patches: TablePatches | None = None,
                     log: Log = print) -> tuple[CVResult, dict[str, Any]]:
    """Score the procedure "pick the best model, then fit it" without letting the pick see a test part.

    Inside every outer training part the models are compared on inner
    splits made by the protocol's rules (:meth:`~classify.splits.Protocol.search_splits`: whole folds,
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
    if protocol.has_validation:
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
    return result, {"rule": rule, "chosen": chosen, "inner_accuracy": json_safe(inner)}


def _inner_scores(name: str, table: FeatureTable, protocol: Protocol, options: TrainOptions,
                  patches: TablePatches | None) -> dict[str, float]:
    """Mean accuracy of model ``name`` over the inner splits of each outer training part."""
    X, y, classes = model_inputs(name, table, patches), table.y, table.classes
    template = options.pipeline(name, n_classes=len(classes), n_features=table.n_features,
                                patch_params=None if patches is None else patches.params)
    groups = protocol.recordings
    tasks, owners = [], []
    for position, split in enumerate(protocol.splits):
        rows, cv = protocol.search_splits(split.train, split.validation, seed=options.seed)
        for k, (inner_train, inner_test) in enumerate(cv):
            train, test = rows[inner_train], rows[inner_test]
            tasks.append(SplitTask(
                name=f"{split.name} inner {k + 1}", train=train, test=test,
                fit_params=group_fit_params(template, None if groups is None else groups[train]),
                seed=split_seed(options.seed, position)))
            owners.append(split.name)
    scores: dict[str, list[float]] = {}
    for owner, task, outcome in zip(owners, tasks,
                                    quiet_restarts(run_splits(template, X, y, classes, tasks,
                                                                options)), strict=True):
        scores.setdefault(owner, []).append(scores_of_rows(table, task.test, outcome.proba)["accuracy"])
    return {owner: float(np.mean(values)) for owner, values in scores.items()}


def model_selection(result: TrainResult, model: str) -> str:
    """How a leaderboard row's model (or the nested procedure) was chosen or set, in words."""
    if model == NESTED:
        return "the model chosen inside each training part (" + (
            "on the validation part" if result.protocol.has_validation
            else "inner splits, by the protocol's rules") + ")"
    how = ("parameters tuned inside each training part" if result.options.tune
           and not is_patch_model(model) else "fixed parameters")
    if result.protocol.has_validation and model in MODELS and MODELS[model].early_stops:
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


def selection_summary(result: TrainResult) -> dict[str, Any]:
    """How the final model was chosen, and which number is the honest estimate (one sentence)."""
    p, board, final = result.protocol, result.leaderboard, result.final_model
    row = board[board["model"] == final].iloc[0]
    summary: dict[str, Any] = {"select": result.options.select, **(result.selection or {})}
    if result.options.final:
        summary["rule"] = f"--final {final}: named by the user"
    summary.setdefault("rule", p.selection_rule)
    if p.leaky:
        summary["honest"] = (f"No number here is an honest estimate: --cv random is {LEAKY_NOTE}, "
                             "so every score is optimistic; use the default protocol.")
        return summary
    if p.has_validation:
        summary.update(honest_model=final, honest_accuracy=float(row["accuracy_mean"]))
        summary["honest"] = (f"The honest estimate is the test accuracy of {final}, "
                             f"{row['accuracy_mean']:.3f}: it was chosen on the validation part, "
                             "and no choice ever saw the test part.")
        return summary
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

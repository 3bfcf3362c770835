"""Writing a run: its tables, figures, ``report.md`` and ``run.json``, committed as one set.

Everything here reads a finished :class:`~classify.results.TrainResult`;
nothing is fitted. The run folder's schema belongs to
:mod:`classify.rundir`; :func:`commit_run` lists every file in
``run.json`` with its checksum and moves the set into place.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.engine.outputs import commit
from features.engine.versions import library_versions
from features.io.atomic import file_sha256

from . import evaluation, importance, plots, registry, rundir, tuning
from .final import patches_provenance
from .references import references_for
from .registry import is_patch_model
from .results import CVResult, TrainResult
from .rundir import NESTED
from .selection import model_selection, quote_table, selection_summary
from .splits import LEAKY_NOTE
from .tables import SEGMENT_COLUMNS, FeatureTable
from .values import json_safe

#: The libraries whose versions ``run.json`` records.
RUN_LIBRARIES = ("numpy", "pandas", "scikit-learn", "tensorflow", "keras", "skops", "librosa",
                 "matplotlib")


IMPORTANCE_SKIPPED_REASON = ("the CNN takes log-mel patches, not the feature columns, so there is no "
                             "feature family to shuffle")


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
        chosen = (json.dumps(json_safe(result.final_params)) if result.final_params
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


def run_info(result: TrainResult) -> rundir.RunInfo:
    """What ``run.json`` records: provenance, protocol, parameters, versions, timings."""
    t, options = result.table, result.options
    patch_params = None if result.patches is None else result.patches.params
    models = {name: json_safe(_step_params(options.pipeline(name, patch_params=patch_params,
                                                            n_features=t.n_features)))
              for name in result.models}
    tuned = None
    if options.tune:
        searched = [name for name in result.models if not is_patch_model(name)]
        tuned = {
            "search": f"HalvingGridSearchCV, factor {tuning.FACTOR}, on rows, scored by accuracy",
            "spaces": {name: json_safe(registry.search_space(name, n_features=t.n_features,
                                                            mlp_layers=options.mlp_layers))
                       for name in searched},
            "chosen": {name: dict(zip(result.results[name].folds["split"],
                                      json_safe(result.results[name].params)))
                       for name in searched},
            "final": json_safe(result.final_params),
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
        params={"options": json_safe(dataclasses.asdict(options)),
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
        timings=json_safe(result.timings),
        n_rows=t.n_rows,
        n_features=t.n_features,
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        tuning=tuned,
        segment=segment,
        importance=imp,
        patches=patches_provenance(result),
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
    return json_safe(found) or None


def _importance_skipped(result: TrainResult) -> list[str]:
    """The models the permutation importance was asked for but does not apply to (the CNNs)."""
    return list(result.options.patch_models) if result.options.importance else []


def _scored(table: FeatureTable, r: CVResult) -> tuple[np.ndarray, np.ndarray]:
    """(true, predicted) labels at the level of the scores: tested rows, or clips of a segment table."""
    tested = np.flatnonzero(r.tested)
    if not table.is_segmented:
        return table.y[tested], r.predicted[tested]
    _, mean, first, _ = evaluation.aggregate_clips(table.clips[tested], r.proba[tested])
    return table.y[tested[first]], table.classes[np.argmax(mean, axis=1)]


def per_class_table(results: dict[str, CVResult], table: FeatureTable) -> pd.DataFrame:
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


def _versions() -> dict[str, str]:
    return {**library_versions(RUN_LIBRARIES), "platform": platform.platform()}

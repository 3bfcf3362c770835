"""HTML report of a training run: ``python -m classify report RUN``.

Reads the run folder through :mod:`classify.rundir` and writes
``RUN/report/index.html`` with its PNGs and the audio of the most confidently
wrong clips beside it, so the ``report/`` folder can be zipped and shared:
leaderboard and the model in the bundle, CV protocol (a leaky one is flagged
at the top), scores per split, extraction summary, which feature families
matter (when the run has ``importance.csv``), confusion matrices and
per-class scores of the best model (the others one click away), and the
wrong predictions to listen to. A run on a segment table says that its
scores are per clip, and its wrong predictions are clips
(``clip_predictions.csv``). This module gathers the numbers and draws the
figures; ``templates/report.html.j2`` lays them out.
"""
from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from features.errors import FeaturesError
from features.io.audio import load_audio
from features.io.datasets import discover
from features.io.storage import is_url
from features.params import FeatureParams

from .. import plots
from ..errors import RunDirError
from ..references import references_for
from ..rundir import (
    CONFUSION_KINDS,
    LEADERBOARD,
    NESTED,
    Run,
    load_run,
    probability_column,
)
from . import figures
from .render import Table, page_folder, rel_url, render_page, slug
from .spectrogram import mel_spectrogram
from .wav import write_wav

__all__ = ["N_WRONG", "build_report"]


#: Out-of-fold predictions listed as "most confidently wrong".
N_WRONG = 12
_AUDIO_SR = 22050
_MAX_AUDIO_SECONDS = 30.0


def build_report(run_dir: str | Path, *, out: str | Path | None = None, models: list[str] | None = None,
                 n_wrong: int = N_WRONG, audio_root: str | Path | None = None,
                 force: bool = False) -> Path:
    """Write the report of the training run in ``run_dir``; returns the path of ``index.html``.

    Parameters
    ----------
    run_dir : str or Path
        Folder written by ``python -m classify train``.
    out : str or Path, optional
        Output folder (default ``RUN/report``).
    models : list of str, optional
        Models to include (default: every model of the leaderboard).
    n_wrong : int
        Most confidently wrong out-of-fold predictions of the best model to show.
    audio_root : str or Path, optional
        Dataset root used to find the clips' audio (default: ``root`` of features.json).
    force : bool
        Write into a non-empty folder that holds no page (its files are kept).
        Either way the folder may not lie inside the dataset.

    Returns
    -------
    Path
        ``OUT/index.html``.

    Raises
    ------
    RunDirError
        A file of the run is missing or lacks a column; the message names it.
    """
    if n_wrong < 0:
        raise ValueError(f"n_wrong={n_wrong} must be 0 or more")
    r = load_run(run_dir)
    shown = _select_models(r, models)
    # The nested row is a procedure, not a model: the best model is the best real one.
    best = next((m for m in shown if m != NESTED), shown[0])
    # Read every matrix before drawing anything: a broken run fails fast, naming the file.
    matrices = {(m, kind): r.confusion(m, kind) for m in shown for kind in CONFUSION_KINDS}
    out = Path(out) if out is not None else r.path / "report"
    meta = r.info.features_json
    root_from_meta = Path(meta["root"]) if meta and meta.get("root") else None
    local_root = root_from_meta if root_from_meta is not None and not is_url(meta["root"]) else None
    root = Path(audio_root) if audio_root is not None else root_from_meta
    with page_folder(out, kind="report", command="classify report", force=force,
                     dataset_root=Path(audio_root) if audio_root is not None else local_root) as staging:
        _render(r, shown, best, matrices, staging, root=root, root_from_meta=root_from_meta,
                n_wrong=n_wrong, root_given=audio_root is not None)
    return out / "index.html"


def _render(r: Run, shown: list[str], best: str, matrices: dict, out: Path, *, root: Path | None,
            root_from_meta: Path | None, n_wrong: int, root_given: bool) -> Path:
    """Draw the figures, copy the clips and write ``index.html`` into ``out``."""
    meta = r.info.features_json
    # "run" says little; the dataset's name says which report this is.
    name = root_from_meta.name if root_from_meta else r.path.resolve().name
    return render_page(
        "report.html.j2", out / "index.html",
        title=f"Training report: {name}", subtitle=str(r.path.resolve()),
        toc=[("quote", "The number to quote"), ("summary", "Leaderboard"), ("protocol", "CV protocol"),
             ("splits", "Scores per split"),
             ("extraction", "Extraction"), ("importance", "Which features matter"),
             ("models", "Confusions per model"), ("wrong", "Confidently wrong"),
             ("details", "Run details")],
        protocol=r.info.protocol,
        quote=_quote(r, shown),
        summary=_summary(r, best, shown),
        splits=_splits(r, shown, out),
        extraction=_extraction(meta, r.info.table),
        importance=_importance(r, best, shown, out),
        models=[_model(r, model, model == best, matrices, out) for model in shown],
        wrong=_wrong(r, best, n_wrong, root, out, root_given) if n_wrong else None,
        details=_details(r),
    )


# ----------------------------------------------------------------- sections


def _quote(r: Run, shown: list[str]) -> dict[str, Any] | None:
    """Which number is the honest estimate, per model how it was chosen, and published references."""
    selection = r.info.selection
    if not selection:
        return None  # a run of an older version: it did not record its selection
    board = r.leaderboard[r.leaderboard["model"].isin(shown)].reset_index(drop=True)
    table = pd.DataFrame({"model": board["model"], "protocol": board["protocol"]})
    if "selection" in board.columns:
        table["selection"] = board["selection"]
    if "validation_accuracy" in board.columns:
        table["validation accuracy"] = board["validation_accuracy"]
    table["accuracy"] = board["accuracy_mean"]
    table["± (std over splits)"] = board["accuracy_std"]
    table["saved"] = ["final model" if m == r.info.final_model else "" for m in board["model"]]
    meta = r.info.features_json or {}
    refs = references_for(meta.get("layout"), r.info.protocol.get("name", ""))
    return {"honest": selection.get("honest", ""), "rule": selection.get("rule", ""),
            "table": Table.of(table), "references": refs,
            "highlight": [i for i, m in enumerate(board["model"])
                          if m == selection.get("honest_model")]}


def _summary(r: Run, best: str, shown: list[str]) -> dict[str, Any]:
    board = r.leaderboard[r.leaderboard["model"].isin(shown)].reset_index(drop=True)
    info = r.info
    tuning = info.tuning or {}
    row = board[board["model"] == best].iloc[0]
    return {
        "best": best, "accuracy_mean": float(row["accuracy_mean"]),
        "accuracy_std": float(row["accuracy_std"]), "n_rows": info.n_rows,
        "n_classes": len(info.classes), "n_features": info.n_features,
        "bundle": r.bundle_dir.name if r.bundle_dir is not None else None,
        "final_model": info.final_model, "board": Table.of(board),
        "best_row": int(board.index[board["model"] == best][0]),
        "ranked_by": ("validation accuracy" if "validation_accuracy" in board.columns
                      else "mean accuracy"),
        "segment": info.segment, "tuned": info.tuning is not None,
        "final_params": json.dumps(tuning["final"]) if tuning.get("final") else None,
        "patches": _patches(r),
    }


def _patches(r: Run) -> dict[str, Any] | None:
    """What the CNN models learned from, and the clips left out of the run for want of a patch or row."""
    info = r.info.patches
    if not info:
        return None
    unmatched = info.get("unmatched") or {}
    models = list(info.get("models") or [])
    return {"models": ", ".join(models), "folder": info.get("folder"),
            "without_augmentation": "cnn" in models and "cnn_aug" not in models,
            "shape": "x".join(map(str, info.get("shape") or [])),
            "seconds": (info.get("params") or {}).get("duration"),
            "n_rows": info.get("n_rows"), "n_table_rows": info.get("n_table_rows"),
            "no_patch": unmatched.get("no_patch") or 0, "no_table_row": unmatched.get("no_table_row") or 0,
            "file": unmatched.get("file")}


def _importance(r: Run, best: str, shown: list[str], out: Path) -> dict[str, Any] | None:
    skipped = {m: why for m, why in ((r.info.importance or {}).get("skipped") or {}).items() if m in shown}
    rows = None if r.importance is None else r.importance[r.importance["model"].isin(shown)]
    if rows is None or rows.empty:
        return {"skipped": skipped, "table": None} if skipped else None
    # The best model may be a CNN, which has no importance: show the best model that has one.
    best = next(m for m in shown if m in set(rows["model"]))
    overall = rows[rows["class"] == "(all)"]
    plots.save_figure(plots.importance_figure(rows, title="Importance of the feature families"),
                      out / "importance.png")
    plots.save_figure(plots.importance_by_class_figure(
        rows[rows["model"] == best], title=f"{best}: importance of each family per class"),
        out / "importance_by_class.png")
    table = (overall.pivot(index="family", columns="model", values="importance_mean")
             .reindex(columns=[m for m in shown if m in set(overall["model"])]))
    table = table.sort_values(best, ascending=False) if best in table.columns else table
    return {"best": best, "skipped": skipped, "metric": str(overall["metric"].iloc[0]).replace("_", " "),
            "n_repeats": int(overall["n_repeats"].iloc[0]),
            "families": [(family, ", ".join(columns)) for family, columns
                         in ((r.info.importance or {}).get("families") or {}).items()],
            "table": Table.of(table.reset_index())}


def _splits(r: Run, shown: list[str], out: Path) -> dict[str, Any]:
    # Leaderboard order, so the legend lists the best model first.
    folds = r.folds[r.folds["model"].isin(shown)]
    folds = folds.iloc[np.argsort([shown.index(m) for m in folds["model"]], kind="stable")]
    images = []
    for metric in ("accuracy", "macro_f1"):
        name = f"folds_{metric}.png"
        label = plots.metric_label(metric)
        plots.save_figure(plots.split_scores_figure(folds, metric=metric, title=f"{label} per held-out split"),
                          out / name)
        images.append({"src": name, "alt": f"{label} of every model on every held-out split"})
    return {"figures": images, "table": Table.of(folds.reset_index(drop=True))}


def _extraction(meta: dict | None, table: str) -> dict[str, Any] | None:
    if meta is None:
        return None
    clips = meta.get("clips") or {}
    params = meta.get("params") or {}
    pairs = [("Dataset root", meta.get("root", "")), ("Layout", meta.get("layout", "")),
             ("Clips total", clips.get("total", "")), ("Clips ok", clips.get("ok", "")),
             ("Clips failed", clips.get("failed", "")),
             ("Clips per second", _rounded(meta.get("clips_per_second"))),
             ("Wall time (s)", _rounded(meta.get("wall_seconds"))), ("Workers", meta.get("jobs", "")),
             ("Preset", params.get("preset", "")), ("Sample rate (Hz)", params.get("sr", "")),
             ("Parameter key", meta.get("param_key", "")), ("Created", meta.get("created", ""))]
    return {"pairs": pairs, "table": table, "failed": clips.get("failed") or 0}


def _rounded(value: Any) -> Any:
    return round(float(value), 2) if isinstance(value, int | float) else ("" if value is None else value)


def _model(r: Run, model: str, is_best: bool, matrices: dict, out: Path) -> dict[str, Any]:
    images = []
    for kind, normalized in (("counts", False), ("normalized", True)):
        name = f"confusion_{slug(model)}_{kind}.png"
        what = "row-normalised" if normalized else "counts"
        title = f"{model}: {what} confusion matrix (out-of-fold)"
        plots.save_figure(plots.confusion_figure(matrices[model, kind], title=title, normalized=normalized),
                          out / name)
        images.append({"src": name, "alt": f"Confusion matrix of {model}, {what}", "normalized": normalized})
    rows = r.per_class[r.per_class["model"] == model].reset_index(drop=True)
    rows = rows.drop(columns=["model", "protocol"])
    per_class = None
    if len(rows):
        per_class = f"per_class_{slug(model)}.png"
        plots.save_figure(plots.per_class_scores_figure(rows, title=f"{model}: per-class precision, recall and F1"),
                          out / per_class)
    return {"name": model, "best": is_best, "figures": images, "per_class": per_class,
            "per_class_table": Table.of(rows)}


def _wrong(r: Run, best: str, n_wrong: int, root: Path | None, out: Path, root_given: bool) -> dict[str, Any]:
    # A segment run is scored per clip: its wrong predictions are clips, played whole.
    source = r.clip_predictions if r.clip_predictions is not None else r.predictions
    preds = source[source["model"] == best]
    is_wrong = preds["label"].astype(str) != preds["predicted"].astype(str)
    wrong = preds[is_wrong].sort_values("confidence", ascending=False, kind="stable").head(n_wrong)
    usable_root = root if root is not None and root.is_dir() else None
    finder = _ClipFinder(usable_root, r.info.path_column)
    return {
        "model": best, "n_shown": len(wrong), "n_wrong": int(is_wrong.sum()), "n_predictions": len(preds),
        "root": str(root) if root is not None else None, "root_exists": usable_root is not None,
        "root_source": "--audio-root" if root_given else "features.json",
        "has_paths": r.info.path_column is not None, "clips": r.clip_predictions is not None,
        "cards": [_card(i, row, finder, out) for i, (_, row) in enumerate(wrong.iterrows(), start=1)],
    }


def _card(i: int, row: pd.Series, finder: _ClipFinder, out: Path) -> dict[str, Any]:

    rel = "" if pd.isna(row["path"]) else str(row["path"])
    true, predicted = str(row["label"]), str(row["predicted"])
    p_true = row.get(probability_column(true))
    card = {"number": i, "true": true, "predicted": predicted, "confidence": float(row["confidence"]),
            "p_true": float(p_true) if p_true is not None and pd.notna(p_true) else None,
            "split": None if pd.isna(row["split"]) else str(row["split"]), "path": rel,
            "root": str(finder.root) if finder.root is not None else None, "problem": None, "audio": None}
    source = finder.find(rel, true)
    if source is None:
        return card | {"problem": "not found"}
    try:
        y, _ = load_audio(source, FeatureParams(sr=_AUDIO_SR, duration=_MAX_AUDIO_SECONDS))
    except (FeaturesError, OSError, ValueError) as exc:
        return card | {"problem": str(exc)}
    name, stem = PurePosixPath(rel).name, f"wrong_{i:02d}"
    audio_file = out / "audio" / f"{stem}.wav"
    write_wav(audio_file, y, _AUDIO_SR)
    plots.save_figure(figures.spectrogram_figure(mel_spectrogram(y, _AUDIO_SR, name=name),
                                               title=f"Mel spectrogram of {name}"), out / f"{stem}.png")
    return card | {"audio": {"src": rel_url(audio_file, out), "label": f"{name}, true {true}, predicted {predicted}"},
                   "image": {"src": f"{stem}.png",
                             "alt": f"Mel spectrogram of {name}, true {true}, predicted {predicted}"}}


def _details(r: Run) -> dict[str, Any]:
    info = r.info
    pairs = [("Table", info.table), ("Table SHA-256", info.table_sha256), ("Rows", info.n_rows),
             ("Features", info.n_features), ("Models", ", ".join(info.models)),
             ("Classes", ", ".join(info.classes))]
    groups = [(heading, [(k, json.dumps(v) if isinstance(v, dict | list) else v) for k, v in value.items()])
              for value, heading in ((info.params, "Training parameters"), (info.timings, "Timings (s)"),
                                     (info.versions, "Versions")) if value]
    return {"pairs": pairs, "groups": groups}


# --------------------------------------------------------------------- data


def _select_models(r: Run, models: list[str] | None) -> list[str]:
    board = list(r.leaderboard["model"])
    if not models:
        return board
    unknown = [m for m in models if m not in board]
    if unknown:
        raise RunDirError(f"--models {','.join(unknown)} not in {r.path / LEADERBOARD}; "
                          f"choose from {','.join(board)}.")
    # Leaderboard order, so the first one is the best of those asked for.
    return [m for m in board if m in models]


class _ClipFinder:
    """Finds the audio of a ``predictions.csv`` row under the dataset root.

    A ``path`` is used exactly as written, and only if it stays inside the
    root: ``predictions.csv`` is a file anyone can edit, so absolute paths,
    ``..`` and symlinks leading out of the root are refused. Tables that name
    clips by file name only (``path_column == "filename"``, GTZAN-style) are
    matched against the dataset's own clip list on file name *and* label,
    and only when exactly one clip matches; a clip of another class with the
    same name is never played instead.
    """

    def __init__(self, root: Path | None, path_column: str | None) -> None:
        self.root = root
        self.path_column = path_column
        self._by_name: dict[tuple[str, str], list[str]] | None = None

    def find(self, name: str, label: str) -> Path | None:
        if self.root is None or not name:
            return None
        if self.path_column == "path":
            return _inside(self.root, name)
        if self.path_column == "filename":
            matches = self._clips_by_name().get((name, label), [])
            return _inside(self.root, matches[0]) if len(matches) == 1 else None
        return None

    def _clips_by_name(self) -> dict[tuple[str, str], list[str]]:
        if self._by_name is None:

            self._by_name = {}
            try:
                clips = discover(self.root).clips
            except (FeaturesError, OSError):
                return self._by_name
            for rel, label in zip(clips["path"].astype(str), clips["label"].astype(str), strict=True):
                self._by_name.setdefault((PurePosixPath(rel).name, label), []).append(rel)
        return self._by_name


def _inside(root: Path, rel: str) -> Path | None:
    """The file ``root/rel`` if it exists and really lies inside ``root``, else None."""
    parts = PurePosixPath(rel)
    if parts.is_absolute() or ".." in parts.parts:
        return None
    try:
        real = (root / parts).resolve(strict=True)
        inside = real.is_relative_to(root.resolve(strict=True))
    except (OSError, RuntimeError):  # missing, or a symlink loop
        return None
    return real if inside and real.is_file() else None

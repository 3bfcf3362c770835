"""HTML report of a training run: ``python -m classify report RUN``.

Reads the run directory written by ``python -m classify train`` and writes
``RUN/report/index.html`` with its PNGs and the audio of the most confidently
wrong clips beside it, so the ``report/`` folder can be zipped and shared:
leaderboard, CV protocol (a leaky one is flagged at the top), scores per
split, extraction summary, confusion matrices and per-class scores of the
best model (the others one click away), and the wrong predictions to listen to.
"""
from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from . import html as H
from . import plots
from .errors import RunDirError
from .rundir import CONFUSION_KINDS, Run, load_run

__all__ = ["N_WRONG", "build_report"]

#: Out-of-fold predictions listed as "most confidently wrong".
N_WRONG = 12
_AUDIO_SR = 22050
_MAX_AUDIO_SECONDS = 30.0
_PROTOCOLS = {
    "folds": "one split per predefined fold of the dataset (the dataset's official protocol): "
             "clips of one recording never sit on both sides.",
    "group": "stratified group k-fold: every recording group is entirely in training or in test.",
    "stratified": "stratified k-fold: class shares are kept in every split; the table had no folds or "
                  "groups, so clips of one recording could be split if the dataset has such clips.",
    "random": "a shuffled hold-out split as in the tutorials; clips of one recording can sit on both sides.",
}


# ----------------------------------------------------------------------------- page


def build_report(run_dir: str | Path, *, out: str | Path | None = None, models: list[str] | None = None,
                 n_wrong: int = N_WRONG, audio_root: str | Path | None = None) -> Path:
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
    best = shown[0]
    # Read every matrix before drawing anything: a broken run fails fast, naming the file.
    matrices = {(m, kind): r.confusion(m, kind) for m in shown for kind in CONFUSION_KINDS}
    out = Path(out) if out is not None else r.path / "report"
    out.mkdir(parents=True, exist_ok=True)
    features_meta = r.info.features_json
    root = Path(audio_root) if audio_root is not None else _dataset_root(features_meta)

    protocol = r.info.protocol
    body = _warning(protocol) + _summary_section(r, best, shown)
    body += _protocol_section(protocol) + _splits_section(r, shown, out)
    body += _extraction_section(features_meta, r.info.table)
    body += _models_section(r, shown, best, matrices, out)
    body += _wrong_section(r, best, n_wrong, root, out, audio_root is not None)
    body += _details_section(r)
    toc = [("summary", "Leaderboard"), ("protocol", "CV protocol"), ("splits", "Scores per split"),
           ("extraction", "Extraction"), ("models", "Confusions per model"), ("wrong", "Confidently wrong"),
           ("details", "Run details")]
    # "run" says little; the dataset's name says which report this is.
    name = Path(features_meta["root"]).name if features_meta and features_meta.get("root") else r.path.resolve().name
    title = f"Training report: {name}"
    return H.write_page(out / "index.html", H.page(title, body, subtitle=str(r.path.resolve()), toc=toc))


def _warning(protocol: dict) -> str:
    if not protocol.get("leaky"):
        return ""
    return H.note(
        f"<strong>Leaky protocol ({H.esc(protocol.get('name', 'random'))}): these scores are optimistic.</strong> "
        f"{H.esc(protocol.get('reason', ''))} Clips of one recording can sit on both sides of the split, so "
        "the model is partly tested on what it has heard. Re-run training with <code>--cv auto</code> for "
        "numbers that hold on new recordings.", "danger")


def _summary_section(r: Run, best: str, shown: list[str]) -> str:
    board = r.leaderboard[r.leaderboard["model"].isin(shown)].reset_index(drop=True)
    best_row = board.iloc[0]
    info = r.info
    text = (f"<p>Best model by mean accuracy: <strong>{H.esc(best)}</strong> "
            f"({float(best_row['accuracy_mean']):.3f} ± {float(best_row['accuracy_std']):.3f}) "
            f"over {info.n_rows} clips, {len(info.classes)} classes and {info.n_features} features.")
    if r.bundle_dir is not None:
        text += (f" The saved model bundle (<code>{H.esc(r.bundle_dir.name)}/</code>) holds "
                 f"<strong>{H.esc(info.final_model)}</strong>, refitted on all clips.")
    else:
        text += " No model bundle was saved by this run."
    text += "</p>"
    caption = '<p class="muted">Means over the CV splits, best first; scores are out-of-fold.</p>'
    return H.section("summary", "Leaderboard", text + H.table(board, highlight=[0]) + caption)


def _protocol_section(protocol: dict) -> str:
    name = str(protocol.get("name", "unknown"))
    pairs = [("Protocol", name), ("Splits", protocol.get("n_splits", "")),
             ("Leaky", "yes" if protocol.get("leaky") else "no"), ("Why", protocol.get("reason", ""))]
    explain = _PROTOCOLS.get(name.split()[0].lower() if name else "", "")
    body = H.key_values(pairs)
    if explain and not protocol.get("reason"):
        body += f"<p>{H.esc(name)}: {H.esc(explain)}</p>"
    warnings = [str(w) for w in protocol.get("warnings") or []]
    if warnings:
        items = "".join(f"<li>{H.esc(w)}</li>" for w in warnings)
        body += H.note(f"Warnings from training:<ul>{items}</ul>", "warn")
    body += ('<p class="muted">Scaling and every other fitted step are fitted on the training part of each '
             "split only, inside the pipeline.</p>")
    return H.section("protocol", "Cross-validation protocol", body)


def _splits_section(r: Run, shown: list[str], out: Path) -> str:
    # Leaderboard order, so the legend lists the best model first.
    folds = r.folds[r.folds["model"].isin(shown)]
    folds = folds.iloc[np.argsort([shown.index(m) for m in folds["model"]], kind="stable")]
    body = ""
    for metric in ("accuracy", "macro_f1"):
        if metric not in folds.columns:
            continue
        name = f"folds_{metric}.png"
        fig = plots.split_scores_figure(folds, metric=metric, title=f"{plots.metric_label(metric)} per held-out split")
        plots.save_figure(fig, out / name)
        body += H.figure(name, f"{plots.metric_label(metric)} of every model on every held-out split",
                         "One line per model; the legend gives the mean over splits.")
    body += H.details("Scores per split (folds.csv)", H.table(folds.reset_index(drop=True)))
    return H.section("splits", "Scores per split", body)


def _extraction_section(meta: dict | None, table: str) -> str:
    if meta is None:
        return H.section("extraction", "Extraction summary", H.note(
            "The table had no <code>features.json</code> beside it when the model was trained, so the "
            "extraction summary is not available.", "info"))
    clips = meta.get("clips") or {}
    params = meta.get("params") or {}
    pairs = [("Dataset root", meta.get("root", "")), ("Layout", meta.get("layout", "")),
             ("Clips total", clips.get("total", "")), ("Clips ok", clips.get("ok", "")),
             ("Clips failed", clips.get("failed", "")),
             ("Clips per second", _num(meta.get("clips_per_second"))),
             ("Wall time (s)", _num(meta.get("wall_seconds"))), ("Workers", meta.get("jobs", "")),
             ("Preset", params.get("preset", "")), ("Sample rate (Hz)", params.get("sr", "")),
             ("Parameter key", meta.get("param_key", "")), ("Created", meta.get("created", ""))]
    body = H.key_values(pairs) + f'<p class="muted">From the features.json of {H.esc(table)}.</p>'
    if clips.get("failed"):
        body += H.note(f"{clips['failed']} clip(s) could not be used; their reasons are in "
                       "<code>errors.csv</code> beside the features table.", "warn")
    return H.section("extraction", "Extraction summary", body)


def _num(value) -> object:
    return round(float(value), 2) if isinstance(value, int | float) else ("" if value is None else value)


def _models_section(r: Run, shown: list[str], best: str, matrices: dict, out: Path) -> str:
    body = ('<p>The best model is open; click another model to see its confusion matrices and per-class '
            "scores.</p>")
    for model in shown:
        label = f"{model} (best)" if model == best else model
        body += H.details(label, _model_block(r, model, matrices, out), expanded=model == best)
    return H.section("models", "Confusion matrices and per-class scores", body)


def _model_block(r: Run, model: str, matrices: dict, out: Path) -> str:
    body = ""
    for kind, normalized in (("counts", False), ("normalized", True)):
        matrix = matrices[model, kind]
        name = f"confusion_{H.slug(model)}_{kind}.png"
        title = f"{model}: {'row-normalised' if normalized else 'counts'} confusion matrix (out-of-fold)"
        plots.save_figure(plots.confusion_figure(matrix, title=title, normalized=normalized), out / name)
        body += H.figure(name, f"Confusion matrix of {model}, {'row-normalised' if normalized else 'counts'}",
                         "Rows: true class; columns: predicted class."
                         + (" Each row sums to 1: the diagonal is the recall." if normalized else ""))
    rows = r.per_class[r.per_class["model"] == model].reset_index(drop=True)
    rows = rows.drop(columns=[c for c in ("model", "protocol") if c in rows.columns])
    if len(rows):
        name = f"per_class_{H.slug(model)}.png"
        plots.save_figure(plots.per_class_scores_figure(rows, title=f"{model}: per-class precision, recall and F1"),
                          out / name)
        body += H.figure(name, f"Per-class precision, recall and F1 of {model}", "Out-of-fold predictions.")
        body += H.details("Per-class table", H.table(rows))
    return body


def _wrong_section(r: Run, best: str, n_wrong: int, root: Path | None, out: Path, root_given: bool) -> str:
    if n_wrong == 0:
        return ""
    preds = r.predictions[r.predictions["model"] == best]
    wrong = preds[preds["label"].astype(str) != preds["predicted"].astype(str)]
    wrong = wrong.sort_values("confidence", ascending=False, kind="stable").head(n_wrong)
    intro = (f"<p>The {len(wrong)} out-of-fold predictions of <strong>{H.esc(best)}</strong> that were wrong with "
             f"the highest confidence ({int((preds['label'].astype(str) != preds['predicted'].astype(str)).sum())} "
             f"wrong of {len(preds)}). Listen: is the label wrong, the clip ambiguous, or the model?</p>")
    if wrong.empty:
        return H.section("wrong", "Most confidently wrong predictions", intro + H.note("No wrong prediction."))
    if root is None:
        intro += H.note("The dataset root is unknown (no features.json), so clips cannot be played. Pass "
                        "<code>--audio-root DATASET</code>.", "warn")
    elif not root.is_dir():
        where = "--audio-root" if root_given else "features.json"
        intro += H.note(f"The dataset root <code>{H.esc(root)}</code> (from {where}) does not exist, so clips "
                        "cannot be played. Pass <code>--audio-root DATASET</code>.", "warn")
    finder = _ClipFinder(root if root is not None and root.is_dir() else None, r.info.path_column)
    # A rerun with other settings must not leave the previous run's clips in a shared folder.
    for stale in [*out.glob("wrong_[0-9]*.png"), *out.glob("audio/wrong_[0-9]*.wav")]:
        stale.unlink()
    cards = [_wrong_card(i, row, finder, out) for i, (_, row) in enumerate(wrong.iterrows(), start=1)]
    return H.section("wrong", "Most confidently wrong predictions",
                     intro + '<div class="cards">' + "".join(cards) + "</div>")


def _wrong_card(i: int, row: pd.Series, finder: _ClipFinder, out: Path) -> str:
    from features.audio import load_audio
    from features.errors import FeaturesError
    from features.params import FeatureParams
    from features.spectrogram import mel_spectrogram
    from features.wav import write_wav

    rel = "" if pd.isna(row["path"]) else str(row["path"])
    true, pred = str(row["label"]), str(row["predicted"])
    prob_true = row.get(f"prob_{true}")
    head = (f"<div><strong>#{i}</strong> true <strong>{H.esc(true)}</strong> → predicted "
            f"<strong>{H.esc(pred)}</strong></div><div>confidence {float(row['confidence']):.3f}"
            + (f", p(true class) {float(prob_true):.3f}" if prob_true is not None and pd.notna(prob_true) else "")
            + _split_text(row)
            + f'</div><div class="path">{H.esc(rel)}</div>')
    source = finder.find(rel, true)
    if source is None:
        where = f" under {H.esc(finder.root)}" if finder.root is not None else ""
        return (f'<div class="card">{head}<p class="muted">Audio not found{where}, so no player or '
                "spectrogram.</p></div>")
    try:
        y, _ = load_audio(source, FeatureParams(sr=_AUDIO_SR, duration=_MAX_AUDIO_SECONDS))
    except (FeaturesError, OSError, ValueError) as exc:
        return f'<div class="card">{head}<p class="muted">Audio could not be read: {H.esc(exc)}</p></div>'
    stem = f"wrong_{i:02d}"
    audio_file = out / "audio" / f"{stem}.wav"
    write_wav(audio_file, y, _AUDIO_SR)
    spec = mel_spectrogram(y, _AUDIO_SR, name=Path(rel).name)
    plots.save_figure(plots.spectrogram_figure(spec, title=f"Mel spectrogram of {Path(rel).name}"),
                      out / f"{stem}.png")
    img = (f'<img src="{H.esc(stem)}.png" alt="Mel spectrogram of {H.esc(Path(rel).name)}, true {H.esc(true)}, '
           f'predicted {H.esc(pred)}">')
    player = H.audio(H.rel_url(audio_file, out), f"{Path(rel).name}, true {true}, predicted {pred}")
    return f'<div class="card">{head}{img}{player}</div>'


def _split_text(row: pd.Series) -> str:
    return "" if pd.isna(row["split"]) else f", held out in {H.esc(row['split'])}"


def _details_section(r: Run) -> str:
    info = r.info
    pairs = [("Table", info.table), ("Table SHA-256", info.table_sha256), ("Rows", info.n_rows),
             ("Features", info.n_features), ("Models", ", ".join(info.models)),
             ("Classes", ", ".join(info.classes))]
    body = H.key_values(pairs)
    for value, heading in ((info.params, "Training parameters"), (info.timings, "Timings (s)"),
                           (info.versions, "Versions")):
        if value:
            body += H.details(heading, H.key_values((k, _jsonish(v)) for k, v in value.items()))
    return H.section("details", "Run details", body)


def _jsonish(value) -> object:
    return json.dumps(value) if isinstance(value, dict | list) else value


def _select_models(r: Run, models: list[str] | None) -> list[str]:
    board = list(r.leaderboard["model"])
    if not models:
        return board
    unknown = [m for m in models if m not in board]
    if unknown:
        raise RunDirError(f"--models {','.join(unknown)} not in {r.path / 'leaderboard.csv'}; "
                          f"choose from {','.join(board)}.")
    # Leaderboard order, so the first one is the best of those asked for.
    return [m for m in board if m in models]


def _dataset_root(features_meta: dict | None) -> Path | None:
    root = (features_meta or {}).get("root")
    return Path(root) if root else None


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
            from features.datasets import discover
            from features.errors import FeaturesError

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

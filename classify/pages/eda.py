"""Exploratory page for a dataset, before training: ``python -m classify eda DATASET``.

Writes ``OUT/index.html`` with its PNGs beside it and example clips in
``OUT/audio/``: clips per class, durations, source formats, example clips as
waveform / log-frequency STFT / mel spectrogram grids with audio players and,
when the features table exists, per-class feature distributions and a PCA.

It stays fast on large datasets because it never reads all the audio: file
headers are read (``soundfile.info``) on a stratified sample of at most
``info_sample`` clips, and samples only for the few example clips. This
module gathers the numbers and draws the figures; ``templates/eda.html.j2``
lays them out.
"""
from __future__ import annotations

import datetime as _dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf

from features.io.naming import default_output

from .. import plots
from . import figures
from .render import Table, page_folder, rel_url, render_page, slug
from .spectrogram import (
    Spectrogram,
    log_stft_spectrogram,
    mel_spectrogram,
)
from .wav import write_wav

__all__ = ["EXAMPLES", "INFO_SAMPLE", "build_eda"]

#: Example clips per class.
EXAMPLES = 3
#: Header reads for the formats table and, without a features table, the durations.
INFO_SAMPLE = 2000
#: Example clips are re-encoded at this rate (16-bit mono WAV plays in every browser).
EXAMPLE_SR = 22050
#: Longer clips are cut for the examples (GTZAN tracks last 30 s).
MAX_EXAMPLE_SECONDS = 30.0
#: Example grids hold at most this many classes per image, so each stays readable.
CLASSES_PER_GRID = 10
#: Points drawn in the PCA scatter (the PCA itself is fitted on every row).
PCA_MAX_POINTS = 3000
#: Classes with fewer clips than this share of the largest are called under-represented.
IMBALANCE_THRESHOLD = 0.5

# (candidate columns: default preset first, then GTZAN's; axis label with unit)
_DISTRIBUTIONS = (
    (("spectral_centroid_mean", "spectral_centroid"), "Spectral centroid (Hz)"),
    (("spectral_rolloff_mean", "rolloff"), "Spectral rolloff (Hz)"),
    (("spectral_bandwidth_mean", "spectral_bandwidth"), "Spectral bandwidth (Hz)"),
    (("zcr_mean", "zero_crossing_rate"), "Zero-crossing rate (crossings per sample)"),
    (("rms_mean", "rmse"), "RMS (amplitude, full scale = 1)"),
    (("mfcc_mean_1", "mfcc1"), "MFCC 1 (dB-scaled coefficient)"),
    (("mfcc_mean_2", "mfcc2"), "MFCC 2 (coefficient)"),
    (("mfcc_mean_3", "mfcc3"), "MFCC 3 (coefficient)"),
    (("mfcc_mean_4", "mfcc4"), "MFCC 4 (coefficient)"),
)
# (file stem, heading, Example attribute, alt text) of the example grids.
_VIEWS = (
    ("waveforms", "Waveforms", "wave", "Waveforms of the example clips"),
    ("stft", "Log-frequency STFT spectrograms", "stft",
     "STFT spectrograms of the example clips on a log-frequency axis, in dB"),
    ("mel", "Mel spectrograms", "mel", "Mel spectrograms of the example clips, in dB"),
)


@dataclass
class Example:
    """One example clip, prepared for the page."""

    label: str
    path: str  # relative to the dataset root
    wave: figures.Waveform
    stft: Spectrogram
    mel: Spectrogram
    audio_file: Path | None = None


@dataclass
class _Formats:
    sample: pd.DataFrame  # path, label, samplerate, channels, format, bit_depth, duration_s
    n_total: int
    failures: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class _TableProblem:
    """Why the page has no features table: ``reason`` picks the template's sentence."""

    reason: str  # "not given", "no table in folder", "missing", "unusable"
    given: str = ""
    detail: str = ""


def build_eda(dataset: str | Path, *, features: str | Path | None = None, out: str | Path | None = None,
              examples: int = EXAMPLES, layout: str | None = None, manifest: str | Path | None = None,
              seed: int = 0, info_sample: int = INFO_SAMPLE, force: bool = False) -> Path:
    """Write the exploratory page of ``dataset``; returns the path of ``index.html``.

    Parameters
    ----------
    dataset : str or Path
        Dataset root (any layout :func:`features.io.datasets.discover` knows).
    features : str or Path, optional
        Features folder or table file. Missing: the page explains how to make it.
    out : str or Path, optional
        Output folder; default ``data/output/<dataset name>/eda``
        (:func:`features.io.naming.default_output`). It must be new, empty or
        an earlier page's, and outside the dataset (see ``force``).
    examples : int
        Example clips per class.
    layout, manifest : optional
        Passed to :func:`features.io.datasets.discover`.
    seed : int
        Seed of the header sample and of the example choice.
    info_sample : int
        At most this many clips have their headers read.
    force : bool
        Write into a non-empty folder that holds no page (its files are kept).

    Returns
    -------
    Path
        ``OUT/index.html``.
    """
    from features.errors import DatasetLayoutError
    from features.io.datasets import discover

    if examples < 1:
        raise ValueError(f"examples={examples} must be 1 or more")
    if info_sample < 1:
        raise ValueError(f"info_sample={info_sample} must be 1 or more")
    started = time.perf_counter()
    dataset = Path(dataset)
    ds = discover(dataset, layout=layout, manifest=manifest)
    out = Path(out) if out is not None else default_output(dataset, "eda")
    clips = ds.clips
    classes = sorted(clips["label"].astype(str).unique())
    if not classes:
        raise DatasetLayoutError(f"dataset {dataset} has no usable clips (layout {ds.layout}, "
                                 f"{len(ds.errors)} metadata problem(s)); check its metadata or layout")
    with page_folder(out, kind="eda", command="classify eda", force=force,
                     dataset_root=ds.root) as staging:
        _build(ds, dataset, features, staging, classes, examples=examples, seed=seed,
               info_sample=info_sample, started=started)
    return out / "index.html"


def _build(ds, dataset: Path, features, out: Path, classes: list[str], *, examples: int, seed: int,
           info_sample: int, started: float) -> Path:
    """Gather the numbers, draw the figures and render the page into ``out``."""
    clips = ds.clips
    table, problem = _load_features(features)
    formats = _read_formats(ds.root, clips, info_sample, seed)
    chosen = _choose_examples(ds.root, clips, classes, examples, seed, out)
    context = {
        "title": f"Dataset exploration: {dataset.resolve().name}",
        "subtitle": str(ds.root),
        "toc": [("overview", "Overview"), ("counts", "Clips per class"), ("durations", "Durations"),
                ("formats", "Source formats"), ("examples", "Example clips"), ("features", "Features")],
        "dataset": str(dataset),
        "overview": _overview(ds, classes, table),
        "counts": _counts(clips, out),
        "durations": _durations(table, formats, classes, out),
        "formats": _formats(formats),
        "examples": _examples(chosen, classes, examples, out),
        "features": _features(table, problem, classes, seed, out, dataset),
    }
    context["built"] = {"seconds": time.perf_counter() - started,
                        "on": _dt.datetime.now().isoformat(timespec="seconds")}
    return render_page("eda.html.j2", out / "index.html", **context)


# ----------------------------------------------------------------- sections


def _overview(ds, classes: list[str], table) -> dict[str, Any]:
    pairs = [("Dataset root", str(ds.root)), ("Layout", ds.layout), ("Clips", len(ds.clips)),
             ("Classes", len(classes))]
    folds = ds.clips["fold"].dropna()
    if len(folds):
        pairs.append(("Predefined folds", ", ".join(str(f) for f in sorted(folds.unique()))))
    groups = ds.clips["group"].astype(str)
    if (groups != "").any():
        pairs.append(("Recording groups", groups[groups != ""].nunique()))
    pairs.append(("Features table", "loaded" if table is not None else "not found"))
    errors = [f"{f'row {e.row}' if getattr(e, 'row', None) else (e.path or 'dataset')}: {e.message}"
              for e in ds.errors]
    return {"pairs": pairs, "errors": errors[:10], "n_errors": len(errors)}


def _counts(clips: pd.DataFrame, out: Path) -> dict[str, Any]:
    counts = clips["label"].astype(str).value_counts()
    plots.save_figure(figures.class_counts_figure(counts, title="Clips per class",
                                                threshold=IMBALANCE_THRESHOLD), out / "class_counts.png")
    largest = int(counts.max())
    low = counts[counts < IMBALANCE_THRESHOLD * largest]
    smaller = counts[counts < 0.8 * largest]
    balance = "imbalanced" if len(low) else "mildly imbalanced" if len(smaller) else "balanced"
    named = low if len(low) else smaller
    return {
        "n_clips": len(clips), "n_classes": len(counts), "hatched": bool(len(low)),
        "balance": balance, "largest": largest, "threshold": IMBALANCE_THRESHOLD,
        "ratio": largest / max(int(counts.min()), 1),
        "classes": [(c, int(n), n / largest) for c, n in named.items()],
    }


def _durations(table, formats: _Formats, classes: list[str], out: Path) -> dict[str, Any] | None:
    if table is not None and "duration_s" in table.df.columns:
        durations = pd.DataFrame({"label": table.df[table.label_col].astype(str),
                                  "duration_s": pd.to_numeric(table.df["duration_s"], errors="coerce")})
        source = f"from the features table's duration_s column ({len(durations)} clips)"
    else:
        durations = formats.sample[["label", "duration_s"]]
        source = _sample_phrase(len(formats.sample), formats.n_total) + " (file headers)"
    durations = durations[np.isfinite(durations["duration_s"].to_numpy(dtype=float))]
    if durations.empty:
        return None
    plots.save_figure(figures.duration_histograms_figure(durations, title="Clip durations per class",
                                                       classes=classes), out / "durations.png")
    stats = durations.groupby("label")["duration_s"].agg(["count", "min", "median", "max"]).reset_index()
    stats.columns = ["class", "clips", "min (s)", "median (s)", "max (s)"]
    return {"figure": "durations.png", "source": source, "stats": Table.of(stats)}


def _sample_phrase(n_sample: int, n_total: int) -> str:
    if n_sample < n_total:
        return f"from a random sample of {n_sample} of the {n_total} clips, stratified by class"
    return f"from all {n_total} clips"


def _formats(formats: _Formats) -> dict[str, Any]:
    s = formats.sample
    tables = []
    for column, heading in (("samplerate", "Sample rate (Hz)"), ("bit_depth", "Bit depth (soundfile subtype)"),
                            ("channels", "Channels"), ("format", "Container")):
        if s.empty:
            break
        counts = s[column].value_counts().rename_axis(heading).reset_index(name="clips")
        counts["share"] = (counts["clips"] / len(s)).map("{:.1%}".format)
        tables.append(Table.of(counts))
    return {
        "tables": tables, "source": _sample_phrase(len(s), formats.n_total),
        "is_sample": len(s) < formats.n_total,
        "mixed": not s.empty and (s["samplerate"].nunique() > 1 or s["channels"].nunique() > 1),
        "failures": formats.failures[:10], "n_failures": len(formats.failures),
    }


def _examples(chosen: dict[str, list[Example]], classes: list[str], n: int, out: Path) -> dict[str, Any]:
    shown = [c for c in classes if chosen.get(c)]
    rows = []
    for label in classes:
        found = chosen.get(label, [])
        players = [{"src": rel_url(ex.audio_file, out), "label": f"{label} example {k + 1}",
                    "name": Path(ex.path).name} for k, ex in enumerate(found)]
        rows.append({"label": label, "players": players + [None] * (n - len(found))})
    views = []
    for stem, heading, attr, alt in _VIEWS if shown else ():
        drawn = []
        for part, start in enumerate(range(0, len(shown), CLASSES_PER_GRID), start=1):
            group = {c: [getattr(e, attr) for e in chosen[c]] for c in shown[start:start + CLASSES_PER_GRID]}
            name = f"{stem}.png" if len(shown) <= CLASSES_PER_GRID else f"{stem}_{part}.png"
            fig = (figures.waveform_grid_figure(group, title=heading) if attr == "wave"
                   else figures.spectrogram_grid_figure(group, title=f"{heading} (dB re clip peak)"))
            plots.save_figure(fig, out / name)
            drawn.append({"src": name, "alt": f"{alt}: " + ", ".join(group)})
        views.append({"heading": heading, "figures": drawn})
    return {
        "any": bool(shown), "n": n, "rows": rows, "views": views, "sr": EXAMPLE_SR,
        "max_seconds": f"{MAX_EXAMPLE_SECONDS:g}",
        "missing": [c for c in classes if len(chosen.get(c, [])) < n],
    }


def _features(table, problem: _TableProblem | None, classes: list[str], seed: int, out: Path,
              dataset: Path) -> dict[str, Any]:
    if table is None:
        return {"problem": problem}
    df = table.df
    root = (table.features_meta or {}).get("root")
    present = [(next(c for c in cols if c in df.columns), label) for cols, label in _DISTRIBUTIONS
               if any(c in df.columns for c in cols)]
    if present:
        fig = figures.feature_distributions_figure(df, features=present, title="Feature distributions per class",
                                                 classes=classes, label_col=table.label_col)
        plots.save_figure(fig, out / "feature_distributions.png")
    return {
        "problem": None, "n_rows": len(df),
        "other_root": root if root and Path(root).resolve() != dataset.resolve() else None,
        "distributions": "feature_distributions.png" if present else None,
        "pca": _pca(table, classes, seed, out),
    }


def _pca(table, classes: list[str], seed: int, out: Path) -> dict[str, Any]:
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    X = table.df[list(table.feature_columns)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    labels = table.df[table.label_col].astype(str).to_numpy()
    keep = np.isfinite(X).all(axis=1)
    X, labels = X[keep], labels[keep]
    if len(X) < 3 or X.shape[1] < 2:
        return {"figure": None, "n_rows": len(X), "n_features": X.shape[1]}
    # Standardise first: otherwise Hz-scaled columns (centroid, rolloff) alone decide the axes.
    pca = PCA(n_components=2, random_state=seed)
    coords = pca.fit_transform(StandardScaler().fit_transform(X))
    drawn = _stratified_positions(labels, PCA_MAX_POINTS, seed)
    fig = figures.pca_figure(coords[drawn], labels[drawn], explained=pca.explained_variance_ratio_,
                           title="PCA of the standardised features", classes=classes)
    plots.save_figure(fig, out / "pca.png")
    return {"figure": "pca.png", "n_rows": len(X), "n_features": X.shape[1], "n_drawn": len(drawn),
            "explained": float(pca.explained_variance_ratio_.sum())}


# --------------------------------------------------------------------- data


def _load_features(features: str | Path | None):
    """(FeatureTable, None), or (None, why there is none)."""
    if features is None:
        return None, _TableProblem("not given")
    path = Path(features)
    if path.is_dir():
        path = next((p for p in (path / "features.parquet", path / "features.csv") if p.is_file()), None)
        if path is None:
            return None, _TableProblem("no table in folder", str(features))
    elif not path.is_file():
        return None, _TableProblem("missing", str(features))
    from ..errors import TableError
    from ..tables import load_table

    try:
        return load_table(path), None
    except TableError as exc:
        # The dataset overview is still worth having; say what is wrong with the table.
        return None, _TableProblem("unusable", str(path), str(exc))


def _stratified_positions(labels: np.ndarray, n_max: int, seed: int) -> np.ndarray:
    """Sorted row positions of a class-stratified random sample of at most ``n_max`` rows."""
    n = len(labels)
    if n <= n_max:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    picked = []
    for label in sorted(set(labels)):
        positions = np.flatnonzero(labels == label)
        # Proportional share, but at least one clip, so rare classes still appear.
        k = max(1, round(len(positions) * n_max / n))
        picked.append(rng.choice(positions, size=min(k, len(positions)), replace=False))
    return np.sort(np.concatenate(picked))


def _read_formats(root: Path, clips: pd.DataFrame, n_max: int, seed: int) -> _Formats:
    positions = _stratified_positions(clips["label"].astype(str).to_numpy(), n_max, seed)
    records, failures = [], []
    for path, label in zip(clips["path"].iloc[positions], clips["label"].iloc[positions], strict=True):
        try:
            info = sf.info(str(root / path))
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            failures.append((str(path), str(exc).strip() or type(exc).__name__))
            continue
        records.append({"path": str(path), "label": str(label), "samplerate": int(info.samplerate),
                        "channels": int(info.channels), "format": str(info.format),
                        "bit_depth": f"{info.subtype} ({info.subtype_info})",
                        "duration_s": info.frames / info.samplerate if info.samplerate else np.nan})
    columns = ["path", "label", "samplerate", "channels", "format", "bit_depth", "duration_s"]
    return _Formats(pd.DataFrame.from_records(records, columns=columns), len(clips), failures)


def _choose_examples(root: Path, clips: pd.DataFrame, classes: list[str], n: int, seed: int,
                     out: Path) -> dict[str, list[Example]]:
    """Load up to ``n`` random clips per class (skipping unreadable ones) and write their WAVs."""
    from features.errors import FeaturesError
    from features.io.audio import load_audio
    from features.params import FeatureParams

    params = FeatureParams(sr=EXAMPLE_SR, duration=MAX_EXAMPLE_SECONDS)
    rng = np.random.default_rng(seed)
    labels = clips["label"].astype(str).to_numpy()
    chosen: dict[str, list[Example]] = {}
    for k, label in enumerate(classes, start=1):
        positions = rng.permutation(np.flatnonzero(labels == label))
        found: list[Example] = []
        # A few spare tries per example, so one broken file does not empty the row,
        # while a class of broken files cannot make us read the whole dataset.
        for pos in positions[: 3 * n]:
            rel = str(clips["path"].iloc[pos])
            try:
                y, _ = load_audio(root / rel, params)
            except (FeaturesError, OSError, ValueError):
                continue
            name = Path(rel).name
            ex = Example(label=label, path=rel, wave=figures.Waveform(y, EXAMPLE_SR, name),
                         stft=log_stft_spectrogram(y, EXAMPLE_SR, name=name),
                         mel=mel_spectrogram(y, EXAMPLE_SR, name=name))
            # Named by class number and rank (unique even if two class names slug alike),
            # so a rerun overwrites instead of piling up clips.
            ex.audio_file = out / "audio" / f"{k:02d}_{slug(label)}_{len(found) + 1}.wav"
            write_wav(ex.audio_file, y, EXAMPLE_SR)
            found.append(ex)
            if len(found) == n:
                break
        chosen[label] = found
    return chosen

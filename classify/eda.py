"""Exploratory page for a dataset, before training: ``python -m classify eda DATASET``.

Writes ``OUT/index.html`` with its PNGs beside it and example clips in
``OUT/audio/``: clips per class, durations, source formats, example clips as
waveform / log-frequency STFT / mel spectrogram grids with audio players and,
when the features table exists, per-class feature distributions and a PCA.

It stays fast on large datasets because it never reads all the audio: file
headers are read (``soundfile.info``) on a stratified sample of at most
``info_sample`` clips, and samples only for the few example clips.
"""
from __future__ import annotations

import datetime as _dt
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from features.spectrogram import Spectrogram, log_stft_spectrogram, mel_spectrogram
from features.wav import write_wav

from . import html as H
from . import plots

__all__ = [
    "Example",
    "build_eda",
]

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


@dataclass
class Example:
    """One example clip, prepared for the page."""

    label: str
    path: str  # relative to the dataset root
    wave: plots.Waveform
    stft: Spectrogram
    mel: Spectrogram
    audio_file: Path | None = None


@dataclass
class _Formats:
    sample: pd.DataFrame  # path, label, samplerate, channels, subtype, subtype_info, format, duration_s
    n_total: int
    failures: list[tuple[str, str]] = field(default_factory=list)


# ----------------------------------------------------------------------------- page


def build_eda(dataset: str | Path, *, features: str | Path | None = None, out: str | Path | None = None,
              examples: int = EXAMPLES, layout: str | None = None, manifest: str | Path | None = None,
              seed: int = 0, info_sample: int = INFO_SAMPLE) -> Path:
    """Write the exploratory page of ``dataset``; returns the path of ``index.html``.

    Parameters
    ----------
    dataset : str or Path
        Dataset root (any layout :func:`features.datasets.discover` knows).
    features : str or Path, optional
        Features folder or table file. Missing: the page explains how to make it.
    out : str or Path, optional
        Output folder; default ``data/output/<dataset name>/eda``.
    examples : int
        Example clips per class.
    layout, manifest : optional
        Passed to :func:`features.datasets.discover`.
    seed : int
        Seed of the header sample and of the example choice.
    info_sample : int
        At most this many clips have their headers read.

    Returns
    -------
    Path
        ``OUT/index.html``.
    """
    from features.datasets import discover
    from features.errors import DatasetLayoutError

    if examples < 1:
        raise ValueError(f"examples={examples} must be 1 or more")
    if info_sample < 1:
        raise ValueError(f"info_sample={info_sample} must be 1 or more")
    started = time.perf_counter()
    dataset = Path(dataset)
    ds = discover(dataset, layout=layout, manifest=manifest)
    out = Path(out) if out is not None else Path("data/output") / dataset.resolve().name / "eda"
    out.mkdir(parents=True, exist_ok=True)
    clips = ds.clips
    classes = sorted(clips["label"].astype(str).unique())
    if not classes:
        raise DatasetLayoutError(f"dataset {dataset} has no usable clips (layout {ds.layout}, "
                                 f"{len(ds.errors)} metadata problem(s)); check its metadata or layout")

    table, table_note = _load_features(features, dataset)
    formats = _read_formats(ds.root, clips, info_sample, seed)
    chosen = _choose_examples(ds.root, clips, classes, examples, seed, out)

    parts = [
        _overview_section(ds, classes, table),
        _counts_section(clips, out),
        _durations_section(table, formats, classes, out),
        _formats_section(formats),
        _examples_section(chosen, classes, examples, out),
        _features_section(table, table_note, classes, seed, out, dataset),
    ]
    body = "".join(parts) + (f'<p class="muted">Built in {time.perf_counter() - started:.1f} s on '
                             f"{_dt.datetime.now().isoformat(timespec='seconds')}.</p>")
    toc = [("overview", "Overview"), ("counts", "Clips per class"), ("durations", "Durations"),
           ("formats", "Source formats"), ("examples", "Example clips"), ("features", "Features")]
    title = f"Dataset exploration: {dataset.resolve().name}"
    return H.write_page(out / "index.html", H.page(title, body, subtitle=str(ds.root), toc=toc))


def _overview_section(ds, classes: list[str], table) -> str:
    pairs = [("Dataset root", str(ds.root)), ("Layout", ds.layout), ("Clips", len(ds.clips)),
             ("Classes", len(classes))]
    folds = ds.clips["fold"].dropna()
    if len(folds):
        pairs.append(("Predefined folds", ", ".join(str(f) for f in sorted(folds.unique()))))
    groups = ds.clips["group"].astype(str)
    if (groups != "").any():
        pairs.append(("Recording groups", groups[groups != ""].nunique()))
    pairs.append(("Features table", "loaded" if table is not None else "not found"))
    body = H.key_values(pairs)
    if ds.errors:
        items = "".join(f"<li>{H.esc(_error_text(e))}</li>" for e in ds.errors[:10])
        more = f"<p>… and {len(ds.errors) - 10} more.</p>" if len(ds.errors) > 10 else ""
        body += H.note(f"<strong>{len(ds.errors)} metadata row(s) were skipped</strong> while reading "
                       f"the dataset:<ul>{items}</ul>{more}", "warn")
    return H.section("overview", "Overview", body)


def _error_text(err) -> str:
    where = f"row {err.row}" if getattr(err, "row", None) else (err.path or "dataset")
    return f"{where}: {err.message}"


def _counts_section(clips: pd.DataFrame, out: Path) -> str:
    counts = clips["label"].astype(str).value_counts()
    plots.save_figure(plots.class_counts_figure(counts, title="Clips per class",
                                                threshold=IMBALANCE_THRESHOLD), out / "class_counts.png")
    largest = int(counts.max())
    low = counts[counts < IMBALANCE_THRESHOLD * largest]
    smaller = counts[counts < 0.8 * largest]
    ratio = f"The largest class has {largest / max(int(counts.min()), 1):.1f}× the clips of the smallest."

    def names(series: pd.Series) -> str:
        return ", ".join(f"<strong>{H.esc(c)}</strong> ({int(n)} clips, {n / largest:.0%})" for c, n in series.items())

    if len(low):
        text = H.note(f"Imbalanced: {names(low)} have fewer than {IMBALANCE_THRESHOLD:.0%} of the clips of the "
                      f"largest class ({largest}). {ratio} Look at balanced accuracy and per-class recall, not "
                      "only accuracy, and consider <code>--class-weight balanced</code> for the MLP.", "warn")
    elif len(smaller):
        text = H.note(f"Mildly imbalanced: {names(smaller)} have fewer than 80% of the clips of the largest "
                      f"class ({largest}), but every class has at least {IMBALANCE_THRESHOLD:.0%}. {ratio} "
                      "Check their per-class recall in the training report.", "info")
    else:
        text = H.note(f"Balanced: every class has at least 80% of the clips of the largest class ({largest}).")
    fig = H.figure("class_counts.png", "Bar chart of the number of clips per class",
                   f"{len(clips)} clips in {len(counts)} classes"
                   + ("; hatched bars are under-represented classes." if len(low) else "."))
    return H.section("counts", "Clips per class", fig + text)


def _durations_section(table, formats: _Formats, classes: list[str], out: Path) -> str:
    if table is not None and "duration_s" in table.df.columns:
        durations = pd.DataFrame({"label": table.df[table.label_col].astype(str),
                                  "duration_s": pd.to_numeric(table.df["duration_s"], errors="coerce")})
        source = f"from the features table's duration_s column ({len(durations)} clips)"
    else:
        durations = formats.sample[["label", "duration_s"]]
        source = _sample_phrase(len(formats.sample), formats.n_total) + " (file headers)"
    durations = durations[np.isfinite(durations["duration_s"].to_numpy(dtype=float))]
    if durations.empty:
        return H.section("durations", "Durations", H.note("No clip duration could be read.", "warn"))
    plots.save_figure(plots.duration_histograms_figure(durations, title="Clip durations per class",
                                                       classes=classes), out / "durations.png")
    stats = durations.groupby("label")["duration_s"].agg(["count", "min", "median", "max"]).reset_index()
    stats.columns = ["class", "clips", "min (s)", "median (s)", "max (s)"]
    body = (H.figure("durations.png", "Histograms of clip durations, one per class",
                     f"Durations {source}.") + H.details("Duration statistics per class", H.table(stats, digits=2)))
    return H.section("durations", "Durations", body)


def _sample_phrase(n_sample: int, n_total: int) -> str:
    if n_sample < n_total:
        return f"from a random sample of {n_sample} of the {n_total} clips, stratified by class"
    return f"from all {n_total} clips"


def _formats_section(formats: _Formats) -> str:
    s = formats.sample
    if s.empty:
        body = H.note("No clip header could be read; see the failures below.", "warn")
    else:
        tables = []
        for column, heading in (("samplerate", "Sample rate (Hz)"), ("bit_depth", "Bit depth (soundfile subtype)"),
                                ("channels", "Channels"), ("format", "Container")):
            counts = s[column].value_counts().rename_axis(heading).reset_index(name="clips")
            counts["share"] = (counts["clips"] / len(s)).map("{:.1%}".format)
            tables.append(f"<div>{H.table(counts)}</div>")
        body = ('<div style="display:flex;flex-wrap:wrap;gap:1.5rem">' + "".join(tables) + "</div>"
                + f'<p class="muted">Read with <code>soundfile.info</code> {_sample_phrase(len(s), formats.n_total)}.'
                + (" This is a sample: rare formats may be missing from it." if len(s) < formats.n_total else "")
                + "</p>")
        if s["samplerate"].nunique() > 1 or s["channels"].nunique() > 1:
            body += H.note("Mixed sample rates or channel counts: feature extraction mixes every clip down to mono "
                           "and resamples it to one rate, so all clips are analysed alike.", "info")
    if formats.failures:
        items = "".join(f"<li><code>{H.esc(p)}</code>: {H.esc(m)}</li>" for p, m in formats.failures[:10])
        body += H.note(f"{len(formats.failures)} sampled clip(s) could not be opened by soundfile:"
                       f"<ul>{items}</ul>", "warn")
    return H.section("formats", "Source formats", body)


def _examples_section(chosen: dict[str, list[Example]], classes: list[str], n: int, out: Path) -> str:
    shown = [c for c in classes if chosen.get(c)]
    if not shown:
        return H.section("examples", "Example clips", H.note("No example clip could be loaded.", "warn"))
    rows = []
    for label in classes:
        cells = [H.esc(label)]
        for k in range(n):
            ex = chosen.get(label, [])
            if k < len(ex):
                cells.append(H.audio(H.rel_url(ex[k].audio_file, out), f"{label} example {k + 1}")
                             + f'<br><span class="muted">{H.esc(Path(ex[k].path).name)}</span>')
            else:
                cells.append('<span class="muted">not available</span>')
        rows.append(cells)
    listen = pd.DataFrame(rows, columns=["class", *[f"example {k + 1}" for k in range(n)]])
    body = ("<h3>Listen</h3>" + H.table(listen, html_columns=listen.columns)
            + f'<p class="muted">Clips re-encoded as 16-bit mono WAV at {EXAMPLE_SR} Hz'
            + f" (longer clips cut to {MAX_EXAMPLE_SECONDS:g} s), in <code>audio/</code>.</p>")
    missing = [c for c in classes if len(chosen.get(c, [])) < n]
    if missing:
        body += H.note("Fewer examples than asked for: " + ", ".join(H.esc(c) for c in missing)
                       + " (too few clips, or clips that could not be loaded).", "warn")
    views = (("waveforms", "Waveforms", "wave", "Waveforms of the example clips"),
             ("stft", "Log-frequency STFT spectrograms", "stft",
              "STFT spectrograms of the example clips on a log-frequency axis, in dB"),
             ("mel", "Mel spectrograms", "mel", "Mel spectrograms of the example clips, in dB"))
    for stem, heading, attr, alt in views:
        body += f"<h3>{H.esc(heading)}</h3>"
        for part, start in enumerate(range(0, len(shown), CLASSES_PER_GRID), start=1):
            group = {c: [getattr(e, attr) for e in chosen[c]] for c in shown[start:start + CLASSES_PER_GRID]}
            name = f"{stem}.png" if len(shown) <= CLASSES_PER_GRID else f"{stem}_{part}.png"
            fig = (plots.waveform_grid_figure(group, title=heading) if attr == "wave"
                   else plots.spectrogram_grid_figure(group, title=f"{heading} (dB re clip peak)"))
            plots.save_figure(fig, out / name)
            body += H.figure(name, f"{alt}: " + ", ".join(group), "Rows: classes; columns: examples "
                             "(same order as the players above).")
    return H.section("examples", "Example clips", body)


def _features_section(table, table_note: str, classes: list[str], seed: int, out: Path, dataset: Path) -> str:
    if table is None:
        kind = "warn" if table_note.startswith("The features table could not") else "info"
        return H.section("features", "Features", H.note(table_note, kind))
    df = table.df
    body = ""
    root = (table.features_meta or {}).get("root")
    if root and Path(root).resolve() != dataset.resolve():
        body += H.note(f"The features table was extracted from <code>{H.esc(root)}</code>, not from this "
                       "dataset folder.", "warn")
    present = [(next(c for c in cols if c in df.columns), label) for cols, label in _DISTRIBUTIONS
               if any(c in df.columns for c in cols)]
    if present:
        fig = plots.feature_distributions_figure(df, features=present, title="Feature distributions per class",
                                                 classes=classes, label_col=table.label_col)
        plots.save_figure(fig, out / "feature_distributions.png")
        body += "<h3>Distributions per class</h3>" + H.figure(
            "feature_distributions.png", "Box plots of spectral and MFCC features per class",
            f"Per-clip means over frames, {len(df)} clips. Boxes: quartiles; whiskers: 1.5 IQR; dots: outliers.")
    else:
        body += H.note("The table has none of the spectral / MFCC columns drawn here.", "info")
    body += "<h3>PCA of the scaled features</h3>" + _pca_block(table, classes, seed, out)
    return H.section("features", "Features", body)


def _pca_block(table, classes: list[str], seed: int, out: Path) -> str:
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    X = table.df[list(table.feature_columns)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    labels = table.df[table.label_col].astype(str).to_numpy()
    keep = np.isfinite(X).all(axis=1)
    X, labels = X[keep], labels[keep]
    if len(X) < 3 or X.shape[1] < 2:
        return H.note(f"PCA needs at least 3 clips and 2 feature columns; the table has {len(X)} usable "
                      f"rows and {X.shape[1]} feature columns.", "info")
    # Standardise first: otherwise Hz-scaled columns (centroid, rolloff) alone decide the axes.
    pca = PCA(n_components=2, random_state=seed)
    coords = pca.fit_transform(StandardScaler().fit_transform(X))
    drawn = _stratified_positions(labels, PCA_MAX_POINTS, seed)
    fig = plots.pca_figure(coords[drawn], labels[drawn], explained=pca.explained_variance_ratio_,
                           title="PCA of the standardised features", classes=classes)
    plots.save_figure(fig, out / "pca.png")
    note = (f" {len(drawn)} of {len(X)} clips drawn (stratified sample); the PCA uses all of them."
            if len(drawn) < len(X) else "")
    return H.figure("pca.png", "Scatter plot of the clips on the first two principal components",
                    f"{X.shape[1]} features, standardised, projected on 2 components "
                    f"({pca.explained_variance_ratio_.sum():.1%} of the variance).{note}")


# ----------------------------------------------------------------------------- data


def _load_features(features: str | Path | None, dataset: Path):
    """(FeatureTable or None, explanation when None)."""
    how = ("Create it with <code>make features DATASET={d}</code> (or <code>python -m features extract {d}"
           "</code>) and run this again with <code>--features</code> pointing at its output folder.").format(
        d=H.esc(dataset))
    if features is None:
        return None, "No features table was given, so per-class feature distributions and the PCA are left out. " + how
    path = Path(features)
    if path.is_dir():
        candidates = [path / "features.parquet", path / "features.csv"]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            return None, (f"No <code>features.parquet</code> or <code>features.csv</code> in "
                          f"<code>{H.esc(features)}</code>. " + how)
    elif not path.is_file():
        return None, f"The features table <code>{H.esc(features)}</code> does not exist. " + how
    from .errors import TableError
    from .tables import load_table

    try:
        return load_table(path), ""
    except TableError as exc:
        # The dataset overview is still worth having; say what is wrong with the table.
        return None, (f"The features table could not be used, so distributions and the PCA are left out: "
                      f"{H.esc(exc)}")


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
    from features.audio import load_audio
    from features.errors import FeaturesError
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
            ex = _example(label, rel, y, EXAMPLE_SR)
            # Named by class number and rank (unique even if two class names slug alike),
            # so a rerun overwrites instead of piling up clips.
            ex.audio_file = out / "audio" / f"{k:02d}_{H.slug(label)}_{len(found) + 1}.wav"
            write_wav(ex.audio_file, y, EXAMPLE_SR)
            found.append(ex)
            if len(found) == n:
                break
        chosen[label] = found
    return chosen


def _example(label: str, rel: str, y: np.ndarray, sr: int) -> Example:
    name = Path(rel).name
    return Example(label=label, path=rel, wave=plots.Waveform(y, sr, name),
                   stft=log_stft_spectrogram(y, sr, name=name), mel=mel_spectrogram(y, sr, name=name))

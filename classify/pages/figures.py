"""The figures of the two pages: class counts, durations, example clips, distributions, PCA.

Built on :mod:`classify.plots` (palettes, saving, layout helpers); like it,
nothing here computes features or reads audio: callers pass ready numbers
(counts, dB spectrograms from :mod:`classify.pages.spectrogram`, PCA
coordinates) and get a :class:`matplotlib.figure.Figure` back.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator

from ..plots import (
    MARKERS,
    NORMAL_BAR,
    WARN_BAR,
    class_palette,
    grid_shape,
    new_figure,
    require_columns,
)
from .spectrogram import Spectrogram

__all__ = [
    "Waveform",
    "class_counts_figure",
    "duration_histograms_figure",
    "feature_distributions_figure",
    "pca_figure",
    "spectrogram_figure",
    "spectrogram_grid_figure",
    "waveform_grid_figure",
]

_SPEC_CMAP = "magma"  # perceptually uniform, readable in greyscale and with CVD
_DB_RANGE = (-80.0, 0.0)


@dataclasses.dataclass(frozen=True)
class Waveform:
    """One clip's samples, ready to draw.

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)]
        Mono samples.
    sr : int
        Sample rate of ``y`` in Hz.
    name : str
        Short caption (usually the file name) shown under the class name.
    """

    y: np.ndarray
    sr: int
    name: str = ""


# ----------------------------------------------------------------------------- EDA


def class_counts_figure(counts: pd.Series, *, title: str, threshold: float = 0.5) -> Figure:
    """Clips per class as horizontal bars, under-represented classes marked.

    Parameters
    ----------
    counts : pd.Series
        Clip count per class, indexed by class name.
    title : str
        Figure title.
    threshold : float
        A class with fewer than ``threshold`` times the largest class's clips is
        drawn in vermillion and hatched, with its share written next to it.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not isinstance(counts, pd.Series) or counts.empty:
        raise ValueError("counts must be a non-empty pandas Series of clips per class")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold={threshold} must be between 0 and 1")
    counts = counts.sort_values(ascending=False, kind="stable")
    largest = float(counts.max())
    n = len(counts)
    fig = new_figure(8.0, max(2.8, 0.36 * n + 1.6))
    ax = fig.add_subplot()
    y = np.arange(n)
    low = counts.to_numpy() < threshold * largest
    ax.barh(y, counts.to_numpy(), color=np.where(low, WARN_BAR, NORMAL_BAR),
            hatch=["//" if flag else "" for flag in low], edgecolor="white")
    for yi, (value, flag) in enumerate(zip(counts.to_numpy(), low, strict=True)):
        text = f"{int(value)}" + (f"  ({value / largest:.0%} of largest)" if value < largest else "")
        # White box: the text stays readable where it crosses the threshold line.
        ax.text(value + largest * 0.01, yi, text, va="center", fontsize=9, color=WARN_BAR if flag else "black",
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5})
    ax.axvline(threshold * largest, color="#555555", linestyle="--", linewidth=1)
    ax.set_yticks(y, labels=[str(c) for c in counts.index])
    ax.invert_yaxis()
    ax.set_xlim(0, largest * 1.35)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("Clips")
    ax.set_ylabel("Class")
    ax.set_title(title)
    handles = [Patch(color=NORMAL_BAR, label=f"at least {threshold:.0%} of the largest class"),
               Patch(facecolor=WARN_BAR, hatch="//", edgecolor="white",
                     label=f"under-represented (< {threshold:.0%})"),
               Line2D([], [], color="#555555", linestyle="--", label=f"{threshold:.0%} of largest")]
    # Below the axes, so it never hides a bar or its count.
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=3, fontsize=8, frameon=False)
    return fig


def duration_histograms_figure(durations: pd.DataFrame, *, title: str,
                               classes: Sequence[str] | None = None, bins: int = 20) -> Figure:
    """One duration histogram per class (small multiples sharing the x axis).

    Parameters
    ----------
    durations : pd.DataFrame
        Columns ``label`` and ``duration_s`` (seconds), one row per clip.
    title : str
        Figure title.
    classes : sequence of str, optional
        Display order (and colours); default: sorted labels.
    bins : int
        Number of bins, shared by all classes.

    Returns
    -------
    matplotlib.figure.Figure
    """
    require_columns(durations, ["label", "duration_s"], "durations table")
    values = pd.to_numeric(durations["duration_s"], errors="coerce")
    labels = durations["label"].astype(str)
    finite = np.isfinite(values.to_numpy(dtype=float))
    if not finite.any():
        raise ValueError("durations table has no finite duration_s value")
    classes = [str(c) for c in (classes if classes is not None else sorted(labels.unique()))]
    edges = np.histogram_bin_edges(values[finite], bins=bins)
    colours = class_palette(classes)
    nrows, ncols = grid_shape(len(classes), 5)
    fig = new_figure(2.7 * ncols + 0.6, 2.0 * nrows + 0.8)
    axes = fig.subplots(nrows, ncols, sharex=True, squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= len(classes):
            ax.set_visible(False)
            continue
        mask = finite & (labels == classes[k]).to_numpy()
        ax.hist(values[mask], bins=edges, color=colours[classes[k]], edgecolor="white", linewidth=0.5)
        ax.set_title(f"{classes[k]} (n={int(mask.sum())})", fontsize=9)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        if k % ncols == 0:
            ax.set_ylabel("Clips")
        if k + ncols >= len(classes):
            ax.set_xlabel("Duration (s)")
            ax.tick_params(labelbottom=True)
    fig.suptitle(title)
    return fig


def waveform_grid_figure(examples: Mapping[str, Sequence[Waveform]], *, title: str) -> Figure:
    """Waveforms of example clips: one row per class, one column per example.

    Parameters
    ----------
    examples : mapping of str to sequence of Waveform
        Class name to its example clips (rows follow the mapping's order).
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    classes, ncols = _check_examples(examples)
    colours = class_palette(classes)
    fig, axes = _example_axes(len(classes), ncols, colourbar=False)
    for r, label in enumerate(classes):
        for c in range(ncols):
            ax = axes[r, c]
            clips = examples[label]
            if c >= len(clips):
                ax.set_visible(False)
                continue
            _draw_waveform(ax, clips[c], colours[label])
            _example_labels(ax, label, clips[c].name, r, c, len(classes), "Amplitude")
    fig.suptitle(title)
    return fig


def spectrogram_grid_figure(examples: Mapping[str, Sequence[Spectrogram]], *, title: str) -> Figure:
    """Spectrograms of example clips: one row per class, one column per example.

    All cells share the colour scale (dB relative to each clip's peak), so one
    colour bar serves the grid.

    Parameters
    ----------
    examples : mapping of str to sequence of Spectrogram
        Class name to its example spectrograms (rows follow the mapping's order).
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    classes, ncols = _check_examples(examples)
    fig, axes = _example_axes(len(classes), ncols, colourbar=True)
    image = None
    for r, label in enumerate(classes):
        for c in range(ncols):
            ax = axes[r, c]
            specs = examples[label]
            if c >= len(specs):
                ax.set_visible(False)
                continue
            image = _draw_spectrogram(ax, specs[c])
            _example_labels(ax, label, specs[c].name, r, c, len(classes), "Frequency (Hz)")
    fig.colorbar(image, cax=fig.axes[-1], label="Level (dB re clip peak)")
    fig.suptitle(title)
    return fig


def spectrogram_figure(spec: Spectrogram, *, title: str) -> Figure:
    """A single spectrogram with its colour bar (thumbnails in the report).

    The geometry is fixed, so a page of thumbnails lines up whatever the title.
    """
    width, height = 4.6, 2.6
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    left, right, bottom, top = 0.72, 0.85, 0.48, 0.32
    ax = fig.add_axes((left / width, bottom / height, 1 - (left + right) / width, 1 - (bottom + top) / height))
    cax = fig.add_axes((1 - (right - 0.15) / width, bottom / height, 0.12 / width, 1 - (bottom + top) / height))
    image = _draw_spectrogram(ax, spec)
    ax.set_xlabel("Time (s)", fontsize=8)
    ax.set_ylabel("Frequency (Hz)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=8.5)
    fig.colorbar(image, cax=cax)
    cax.set_ylabel("dB", fontsize=8)
    cax.tick_params(labelsize=7)
    return fig


def _check_examples(examples: Mapping[str, Sequence]) -> tuple[list[str], int]:
    if not examples or not any(len(v) for v in examples.values()):
        raise ValueError("no example clips to draw")
    return [str(k) for k in examples], max(len(v) for v in examples.values())


def _example_axes(nrows: int, ncols: int, *, colourbar: bool):
    """Fixed-geometry grid (inches), with an optional colour bar axes added last.

    Constrained layout would re-measure every tick label of every cell, which
    takes seconds for a 10 x 3 grid; these cells all look alike, so fixed
    margins do the same job at once.
    """
    cell_w, cell_h, gap_w, gap_h = 2.55, 1.1, 0.6, 0.72
    left, right, top, bottom = 0.75, 1.15 if colourbar else 0.25, 0.95, 0.5
    width = left + right + ncols * cell_w + (ncols - 1) * gap_w
    height = top + bottom + nrows * cell_h + (nrows - 1) * gap_h
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(nrows, ncols, left=left / width, right=1 - right / width, bottom=bottom / height,
                            top=1 - top / height, wspace=gap_w / cell_w, hspace=gap_h / cell_h)
    axes = np.empty((nrows, ncols), dtype=object)
    for r in range(nrows):
        for c in range(ncols):
            axes[r, c] = fig.add_subplot(grid[r, c])
    if colourbar:
        bar_h = min(height - top - bottom, 3.5)
        fig.add_axes(((width - right + 0.25) / width, (height - top - bar_h) / height, 0.16 / width, bar_h / height))
    return fig, axes


def _example_labels(ax, label: str, name: str, row: int, col: int, nrows: int, ylabel: str) -> None:
    short = name if len(name) <= 28 else name[:12] + "…" + name[-14:]
    ax.set_title(f"{label}\n{short}" if short else label, fontsize=8.5)
    ax.tick_params(labelsize=7)
    if col == 0:
        ax.set_ylabel(ylabel, fontsize=8)
    if row == nrows - 1:
        ax.set_xlabel("Time (s)", fontsize=8)


def _draw_waveform(ax, wave: Waveform, colour: str) -> None:
    y = np.asarray(wave.y, dtype=float)
    if y.size == 0:
        ax.text(0.5, 0.5, "empty clip", ha="center", va="center", transform=ax.transAxes)
        return
    if y.size <= 4000:
        ax.plot(np.arange(y.size) / wave.sr, y, color=colour, linewidth=0.6)
    else:
        # Min/max per column: looks like the full waveform at a fraction of the points.
        n_bins = 1200
        edges = np.linspace(0, y.size, n_bins + 1).astype(int)
        lo = np.minimum.reduceat(y, edges[:-1])
        hi = np.maximum.reduceat(y, edges[:-1])
        ax.fill_between(edges[:-1] / wave.sr, lo, hi, color=colour, linewidth=0)
    peak = max(float(np.max(np.abs(y))), 1e-6)
    ax.set_ylim(-1.08 * peak, 1.08 * peak)
    ax.set_xlim(0, y.size / wave.sr)


def _hz_to_axis(freqs: np.ndarray, scale: str) -> np.ndarray:
    freqs = np.asarray(freqs, dtype=float)
    if scale == "log":
        return np.log2(freqs)
    import librosa  # only for its mel formula, so axis ticks match librosa's mel filters

    return np.asarray(librosa.hz_to_mel(freqs), dtype=float)


def _draw_spectrogram(ax, spec: Spectrogram):
    lo, hi = _hz_to_axis(np.array([spec.f_min, spec.f_max]), spec.scale)
    image = ax.imshow(spec.db, origin="lower", aspect="auto", cmap=_SPEC_CMAP,
                      vmin=_DB_RANGE[0], vmax=_DB_RANGE[1], extent=(0.0, spec.duration_s, lo, hi),
                      interpolation="nearest")
    candidates = (np.array([32, 64, 125, 250, 500, 1000, 2000, 4000, 8000, 16000], dtype=float)
                  if spec.scale == "log" else np.array([0, 500, 1000, 2000, 4000, 8000, 16000], dtype=float))
    ticks = candidates[(candidates >= spec.f_min) & (candidates <= spec.f_max)]
    ax.yaxis.set_major_locator(FixedLocator(_hz_to_axis(ticks, spec.scale)))
    labels = {float(pos): _hz_text(f) for pos, f in zip(_hz_to_axis(ticks, spec.scale), ticks, strict=True)}
    ax.yaxis.set_major_formatter(FuncFormatter(lambda pos, _: labels.get(float(pos), "")))
    return image


def _hz_text(freq: float) -> str:
    return f"{freq / 1000:g}k" if freq >= 1000 else f"{freq:g}"


def feature_distributions_figure(table: pd.DataFrame, *, features: Sequence[tuple[str, str]],
                                 title: str, classes: Sequence[str] | None = None,
                                 label_col: str = "label") -> Figure:
    """Per-class box plots of a few features, one panel per feature.

    Parameters
    ----------
    table : pd.DataFrame
        One row per clip with ``label_col`` and the feature columns.
    features : sequence of (column, axis label)
        Columns to draw and their axis labels with units, e.g.
        ``("spectral_centroid_mean", "Spectral centroid (Hz)")``.
    title : str
        Figure title.
    classes : sequence of str, optional
        Display order (and colours); default: sorted labels.
    label_col : str
        Column holding the class names.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not features:
        raise ValueError("features is empty; pass at least one (column, label) pair")
    require_columns(table, [label_col, *[col for col, _ in features]], "features table")
    labels = table[label_col].astype(str)
    classes = [str(c) for c in (classes if classes is not None else sorted(labels.unique()))]
    colours = class_palette(classes)
    nrows, ncols = grid_shape(len(features), 3)
    fig = new_figure(4.0 * ncols + 1.6, (0.27 * len(classes) + 1.1) * nrows + 0.6)
    axes = fig.subplots(nrows, ncols, sharey=True, squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= len(features):
            ax.set_visible(False)
            continue
        column, axis_label = features[k]
        values = pd.to_numeric(table[column], errors="coerce")
        data = [values[(labels == c).to_numpy()].dropna().to_numpy() for c in classes]
        boxes = ax.boxplot(data, orientation="horizontal", positions=range(len(classes)), manage_ticks=False,
                           patch_artist=True, widths=0.65, medianprops={"color": "black"},
                           flierprops={"marker": ".", "markersize": 2, "alpha": 0.4})
        for patch, c in zip(boxes["boxes"], classes, strict=True):
            patch.set_facecolor(colours[c])
            patch.set_alpha(0.85)
        ax.set_title(axis_label.split(" (")[0], fontsize=10)
        ax.set_xlabel(axis_label, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    # The y axis is shared: set the class names once, first class on top in every panel.
    axes[0, 0].set_yticks(range(len(classes)), labels=classes)
    axes[0, 0].set_ylim(len(classes) - 0.5, -0.5)
    fig.suptitle(title)
    return fig


def pca_figure(coords: np.ndarray, labels: Sequence[str], *, explained: Sequence[float], title: str,
               classes: Sequence[str] | None = None) -> Figure:
    """Scatter of clips on the first two principal components, coloured by class.

    Parameters
    ----------
    coords : np.ndarray [shape=(n_clips, 2)]
        PCA coordinates (computed by the caller from standardised features).
    labels : sequence of str [length n_clips]
        Class of each point.
    explained : sequence of float [length 2]
        Explained variance ratio of PC 1 and PC 2 (0..1), shown in the axis labels.
    title : str
        Figure title.
    classes : sequence of str, optional
        Legend order (and colours); default: sorted labels.

    Returns
    -------
    matplotlib.figure.Figure
    """
    coords = np.asarray(coords, dtype=float)
    labels = np.asarray([str(x) for x in labels])
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise ValueError(f"coords has shape {coords.shape}; expected (n_clips, 2)")
    if len(labels) != len(coords):
        raise ValueError(f"{len(labels)} labels for {len(coords)} points; expected one label per point")
    if len(explained) != 2:
        raise ValueError(f"explained has {len(explained)} values; expected 2 (PC 1 and PC 2)")
    classes = [str(c) for c in (classes if classes is not None else sorted(set(labels)))]
    colours = class_palette(classes)
    fig = new_figure(8.4, 6.0)
    ax = fig.add_subplot()
    for k, c in enumerate(classes):
        mask = labels == c
        # Marker shape varies too, so classes stay apart without relying on colour alone.
        ax.scatter(coords[mask, 0], coords[mask, 1], s=22, alpha=0.75, linewidths=0,
                   color=colours[c], marker=MARKERS[k % len(MARKERS)], label=f"{c} ({int(mask.sum())})")
    ax.set_xlabel(f"PC 1 ({explained[0]:.1%} of variance)")
    ax.set_ylabel(f"PC 2 ({explained[1]:.1%} of variance)")
    ax.set_title(title)
    ax.grid(alpha=0.25)
    ax.legend(title="Class (clips drawn)", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
              markerscale=1.6, fontsize=8)
    return fig

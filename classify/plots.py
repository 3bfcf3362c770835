"""Every figure the project draws: EDA views, training diagnostics, report pages.

All matplotlib code lives here and nothing here computes features, fits
models or reads audio: callers pass ready numbers (counts, dB spectrograms,
PCA coordinates, score tables) and get a :class:`matplotlib.figure.Figure`
back. Figures are built with the object-oriented API on an Agg canvas, so
drawing never touches pyplot's global state or needs a display, and a figure
is freed as soon as the caller drops it (:func:`save_figure` writes a PNG).

Colours are colour-blind safe and stable: a class keeps its colour across
every figure of a page (:func:`class_palette`), a model across every figure
of a report (:func:`model_palette`).
"""
from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator

from features.atomic import atomic_path
from features.spectrogram import Spectrogram

__all__ = [
    "DPI",
    "OKABE_ITO",
    "Waveform",
    "class_counts_figure",
    "class_palette",
    "confusion_figure",
    "duration_histograms_figure",
    "feature_distributions_figure",
    "importance_by_class_figure",
    "importance_figure",
    "metric_label",
    "model_palette",
    "pca_figure",
    "per_class_scores_figure",
    "save_figure",
    "spectrogram_figure",
    "spectrogram_grid_figure",
    "split_scores_figure",
    "waveform_grid_figure",
]

#: Okabe & Ito's colour-blind-safe palette (black moved last: it reads as "no colour").
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000")
#: PNG resolution: sharp on a laptop screen, small enough for a page with 20 figures.
DPI = 110

_MODEL_ORDER = ("mlp", "logreg", "svm", "rf", "knn", "hgb")
_MODEL_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
_METRIC_LABELS = {
    "accuracy": "Accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "macro_f1": "Macro F1",
    "precision": "Precision",
    "recall": "Recall",
    "f1": "F1",
    "fit_seconds": "Fit time (s)",
}
_NORMAL_BAR = "#0072B2"  # Okabe-Ito blue
_WARN_BAR = "#D55E00"  # Okabe-Ito vermillion
_SPEC_CMAP = "magma"  # perceptually uniform, readable in greyscale and with CVD
_MATRIX_CMAP = "viridis"
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


# ----------------------------------------------------------------------------- shared helpers


def class_palette(classes: Sequence[str]) -> dict[str, str]:
    """Stable colour per class: Okabe-Ito up to 8 classes, tab10 up to 10, tab20 beyond.

    Parameters
    ----------
    classes : sequence of str
        Class names in display order; the same order gives the same colours.

    Returns
    -------
    dict
        Class name to hex colour (colours repeat after 20 classes; scatter
        plots then also vary the marker).

    Examples
    --------
    >>> class_palette(["dog_bark", "siren"])
    {'dog_bark': '#E69F00', 'siren': '#56B4E9'}
    """
    names = [str(c) for c in classes]
    if len(names) <= len(OKABE_ITO):
        colours = list(OKABE_ITO)
    else:
        cmap = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
        colours = [matplotlib.colors.to_hex(c) for c in cmap.colors]
    return {name: colours[i % len(colours)] for i, name in enumerate(names)}


def model_palette(models: Sequence[str]) -> dict[str, str]:
    """Colour per model name; the known models (mlp, logreg, ...) always get the same one."""
    out: dict[str, str] = {}
    known = _MODEL_COLOURS[: len(_MODEL_ORDER)]
    spare = [c for c in (*_MODEL_COLOURS, *OKABE_ITO, "#999999", "#666666") if c not in known]
    n_unknown = 0
    for model in models:
        if model in _MODEL_ORDER:
            out[model] = known[_MODEL_ORDER.index(model)]
        else:
            out[model] = spare[n_unknown % len(spare)]
            n_unknown += 1
    return out


def metric_label(metric: str) -> str:
    """Human name of a score column (``macro_f1`` -> ``Macro F1``)."""
    return _METRIC_LABELS.get(metric, metric.replace("_", " ").capitalize())


def save_figure(fig: Figure, path: str | Path) -> None:
    """Write ``fig`` as a PNG at :data:`DPI` atomically, creating parent folders, then release it.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        A figure from this module (or from pyplot: it is closed there too).
    path : str or Path
        Destination; its suffix should be ``.png``.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"figure path {path} must end in .png")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png", facecolor="white")
    if getattr(fig.canvas, "manager", None) is not None:
        # Only pyplot-made figures have a manager; closing frees pyplot's reference.
        import matplotlib.pyplot as plt

        plt.close(fig)
    fig.clear()


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _require_columns(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; it has {list(df.columns)}")


def _natural_key(value: object) -> tuple:
    text = str(value)
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def _rotate_xticks(ax, labels: Sequence[str], *, force: bool = False) -> None:
    """Class names on the x axis: rotate as soon as they could collide."""
    ax.set_xticks(range(len(labels)))
    longest = max((len(s) for s in labels), default=0)
    if force or len(labels) * max(longest, 3) > 40:
        ax.set_xticklabels(labels, rotation=45, ha="right", rotation_mode="anchor")
    else:
        ax.set_xticklabels(labels)


def _grid_shape(n: int, max_cols: int) -> tuple[int, int]:
    ncols = max(1, min(n, max_cols))
    return math.ceil(n / ncols), ncols


# ----------------------------------------------------------------------------- training / report


def confusion_figure(matrix: pd.DataFrame, *, title: str, normalized: bool) -> Figure:
    """Annotated confusion matrix: rows are true classes, columns predicted ones.

    Parameters
    ----------
    matrix : pd.DataFrame [shape=(n_classes, n_classes)]
        Class names as index (true) and columns (predicted), same order. Counts,
        or row-normalised shares in [0, 1] (NaN for a class with no clips).
    title : str
        Figure title.
    normalized : bool
        True if the cells are shares of the true class (colour scale fixed to 0..1).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> m = pd.DataFrame([[5, 1], [0, 4]], index=["cat", "dog"], columns=["cat", "dog"])
    >>> fig = confusion_figure(m, title="svm", normalized=False)
    >>> fig.axes[0].get_xlabel()
    'Predicted class'
    """
    if not isinstance(matrix, pd.DataFrame):
        raise TypeError(f"matrix must be a pandas DataFrame, got {type(matrix).__name__}")
    if matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"confusion matrix has shape {matrix.shape}; expected square with >= 1 class")
    classes = [str(c) for c in matrix.index]
    values = matrix.to_numpy(dtype=float)
    n = len(classes)
    side = min(max(4.6, 0.6 * n + 2.8), 18.0)
    fig = _new_figure(side + 1.2, side)
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps[_MATRIX_CMAP].with_extremes(bad="#dddddd")
    vmax = 1.0 if normalized else max(float(np.nanmax(values)) if np.isfinite(values).any() else 1.0, 1.0)
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0.0, vmax=vmax)
    _annotate_cells(ax, values, vmax=vmax, normalized=normalized)
    _rotate_xticks(ax, [str(c) for c in matrix.columns])
    ax.set_yticks(range(n), labels=classes)
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    ax.set_title(title)
    cbar = fig.colorbar(image, ax=ax, shrink=0.8)
    cbar.set_label("Share of the true class's clips" if normalized else "Clips")
    return fig


def _annotate_cells(ax, values: np.ndarray, *, vmax: float, normalized: bool) -> None:
    n = values.shape[0]
    size = 9 if n <= 10 else 7 if n <= 20 else 5
    for (i, j), v in np.ndenumerate(values):
        if not np.isfinite(v):
            text, colour = "–", "black"
        else:
            text = ("0" if v == 0 else f"{v:.2f}") if normalized else f"{v:.0f}"
            # viridis is dark at the low end: white text there, black on the bright end.
            colour = "white" if v < 0.55 * vmax else "black"
        ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=size)


def split_scores_figure(scores: pd.DataFrame, *, metric: str = "accuracy", title: str) -> Figure:
    """Score of every model on every held-out split: one marker line per model.

    Parameters
    ----------
    scores : pd.DataFrame
        ``folds.csv`` of a training run: at least ``model``, ``split`` and ``metric``.
    metric : str
        Column to plot (``accuracy``, ``balanced_accuracy``, ``macro_f1``, ...).
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    _require_columns(scores, ["model", "split", metric], "folds table")
    if scores.empty:
        raise ValueError("folds table has no rows; nothing to plot")
    split_names = sorted({str(f) for f in scores["split"]}, key=_natural_key)
    position = {name: i for i, name in enumerate(split_names)}
    models = list(dict.fromkeys(str(m) for m in scores["model"]))
    colours = model_palette(models)
    fig = _new_figure(max(6.5, 0.5 * len(split_names) + 4.5), 4.2)
    ax = fig.add_subplot()
    # A small horizontal offset per model keeps equal scores from hiding each other.
    offsets = np.linspace(-0.12, 0.12, len(models)) if len(models) > 1 else [0.0]
    for k, model in enumerate(models):
        rows = scores[scores["model"].astype(str) == model]
        x = np.array([position[str(f)] for f in rows["split"]], dtype=float) + offsets[k]
        order = np.argsort(x)
        y = pd.to_numeric(rows[metric], errors="coerce").to_numpy()[order]
        ax.plot(x[order], y, marker=_MARKERS[k % len(_MARKERS)], color=colours[model], linewidth=1.4,
                markersize=6, label=f"{model} (mean {np.nanmean(y):.3f})")
    ax.set_xticks(range(len(split_names)))
    ax.set_xticklabels(split_names, rotation=45 if len(split_names) > 12 else 0)
    ax.set_xlim(-0.5, len(split_names) - 0.5)
    ax.set_xlabel("Held-out fold / split")
    ax.set_ylabel(metric_label(metric))
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="Model", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def per_class_scores_figure(per_class: pd.DataFrame, *, title: str) -> Figure:
    """Precision, recall and F1 of each class as grouped bars.

    Parameters
    ----------
    per_class : pd.DataFrame
        Rows of ``per_class.csv`` for one model: ``class``, ``precision``,
        ``recall``, ``f1`` and optionally ``support`` (shown under the name).
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    metrics = ["precision", "recall", "f1"]
    _require_columns(per_class, ["class", *metrics], "per-class table")
    if per_class.empty:
        raise ValueError("per-class table has no rows; nothing to plot")
    names = [str(c) for c in per_class["class"]]
    if "support" in per_class.columns:
        names = [f"{c} (n={int(s)})" for c, s in zip(names, per_class["support"], strict=True)]
    n = len(names)
    fig = _new_figure(max(6.5, 0.62 * n + 3.0), 4.6)
    ax = fig.add_subplot()
    width = 0.26
    x = np.arange(n)
    for k, (metric, colour) in enumerate(zip(metrics, ("#0072B2", "#E69F00", "#009E73"), strict=True)):
        ax.bar(x + (k - 1) * width, pd.to_numeric(per_class[metric], errors="coerce"), width,
               color=colour, label=metric_label(metric))
    _rotate_xticks(ax, names)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("Class")
    ax.set_ylabel("Score (out-of-fold)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def importance_figure(importance: pd.DataFrame, *, title: str) -> Figure:
    """Importance of every feature family for every model: grouped horizontal bars with their spread.

    Parameters
    ----------
    importance : pd.DataFrame
        ``importance.csv`` of a training run (:mod:`classify.importance`);
        only the rows of ``class == "(all)"`` are drawn.
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Families top to bottom by their mean importance over the models;
        error bars are one standard deviation over the repeats.
    """
    _require_columns(importance, ["model", "family", "class", "importance_mean", "importance_std",
                                  "metric"], "importance table")
    overall = importance[importance["class"].astype(str) == "(all)"]
    if overall.empty:
        raise ValueError("importance table has no '(all)' rows; nothing to plot")
    models = list(dict.fromkeys(str(m) for m in overall["model"]))
    means = overall.pivot(index="family", columns="model", values="importance_mean")[models]
    spread = overall.pivot(index="family", columns="model", values="importance_std")[models]
    families = list(means.mean(axis=1).sort_values().index)  # barh draws bottom-up: most important on top
    colours = model_palette(models)
    fig = _new_figure(7.5, max(3.2, 0.32 * len(families) * len(models) + 1.6))
    ax = fig.add_subplot()
    height = 0.8 / len(models)
    y = np.arange(len(families))
    for k, model in enumerate(models):
        ax.barh(y + (k - (len(models) - 1) / 2) * height, means.loc[families, model], height,
                xerr=spread.loc[families, model], color=colours[model], label=model,
                error_kw={"elinewidth": 0.8, "capsize": 2})
    ax.set_yticks(y)
    ax.set_yticklabels(families)
    ax.axvline(0.0, color="black", linewidth=0.8)
    metric = str(overall["metric"].iloc[0]).replace("_", " ")
    ax.set_xlabel(f"Drop in out-of-fold {metric} when the family is shuffled")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(title="Model", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def importance_by_class_figure(importance: pd.DataFrame, *, title: str) -> Figure:
    """Importance of every feature family for every class of one model, as a heat map.

    Parameters
    ----------
    importance : pd.DataFrame
        Rows of ``importance.csv`` for one model; the per-class rows (not
        ``(all)``) are drawn.
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Families as rows, classes as columns; the colour is the drop in the
        class's recall (red: the class relies on the family).
    """
    _require_columns(importance, ["family", "class", "importance_mean"], "importance table")
    rows = importance[importance["class"].astype(str) != "(all)"]
    if rows.empty:
        raise ValueError("importance table has no per-class rows; nothing to plot")
    matrix = rows.pivot(index="family", columns="class", values="importance_mean")
    matrix = matrix.loc[matrix.mean(axis=1).sort_values(ascending=False).index]
    matrix = matrix[sorted(matrix.columns, key=_natural_key)]
    values = matrix.to_numpy(dtype=float)
    vmax = max(float(np.nanmax(np.abs(values))), 1e-3)
    fig = _new_figure(max(6.0, 0.55 * matrix.shape[1] + 3.0), max(3.0, 0.45 * matrix.shape[0] + 1.8))
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto")
    ax.set_yticks(range(matrix.shape[0]))
    ax.set_yticklabels(matrix.index)
    _rotate_xticks(ax, [str(c) for c in matrix.columns])
    ax.set_xlabel("Class")
    ax.set_ylabel("Feature family")
    ax.set_title(title)
    colourbar = fig.colorbar(image, ax=ax, fraction=0.05, pad=0.02)
    colourbar.set_label("Drop in recall when shuffled")
    return fig


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
    fig = _new_figure(8.0, max(2.8, 0.36 * n + 1.6))
    ax = fig.add_subplot()
    y = np.arange(n)
    low = counts.to_numpy() < threshold * largest
    ax.barh(y, counts.to_numpy(), color=np.where(low, _WARN_BAR, _NORMAL_BAR),
            hatch=["//" if flag else "" for flag in low], edgecolor="white")
    for yi, (value, flag) in enumerate(zip(counts.to_numpy(), low, strict=True)):
        text = f"{int(value)}" + (f"  ({value / largest:.0%} of largest)" if value < largest else "")
        # White box: the text stays readable where it crosses the threshold line.
        ax.text(value + largest * 0.01, yi, text, va="center", fontsize=9, color=_WARN_BAR if flag else "black",
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5})
    ax.axvline(threshold * largest, color="#555555", linestyle="--", linewidth=1)
    ax.set_yticks(y, labels=[str(c) for c in counts.index])
    ax.invert_yaxis()
    ax.set_xlim(0, largest * 1.35)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("Clips")
    ax.set_ylabel("Class")
    ax.set_title(title)
    handles = [Patch(color=_NORMAL_BAR, label=f"at least {threshold:.0%} of the largest class"),
               Patch(facecolor=_WARN_BAR, hatch="//", edgecolor="white",
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
    _require_columns(durations, ["label", "duration_s"], "durations table")
    values = pd.to_numeric(durations["duration_s"], errors="coerce")
    labels = durations["label"].astype(str)
    finite = np.isfinite(values.to_numpy(dtype=float))
    if not finite.any():
        raise ValueError("durations table has no finite duration_s value")
    classes = [str(c) for c in (classes if classes is not None else sorted(labels.unique()))]
    edges = np.histogram_bin_edges(values[finite], bins=bins)
    colours = class_palette(classes)
    nrows, ncols = _grid_shape(len(classes), 5)
    fig = _new_figure(2.7 * ncols + 0.6, 2.0 * nrows + 0.8)
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
    _require_columns(table, [label_col, *[col for col, _ in features]], "features table")
    labels = table[label_col].astype(str)
    classes = [str(c) for c in (classes if classes is not None else sorted(labels.unique()))]
    colours = class_palette(classes)
    nrows, ncols = _grid_shape(len(features), 3)
    fig = _new_figure(4.0 * ncols + 1.6, (0.27 * len(classes) + 1.1) * nrows + 0.6)
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
    fig = _new_figure(8.4, 6.0)
    ax = fig.add_subplot()
    for k, c in enumerate(classes):
        mask = labels == c
        # Marker shape varies too, so classes stay apart without relying on colour alone.
        ax.scatter(coords[mask, 0], coords[mask, 1], s=22, alpha=0.75, linewidths=0,
                   color=colours[c], marker=_MARKERS[k % len(_MARKERS)], label=f"{c} ({int(mask.sum())})")
    ax.set_xlabel(f"PC 1 ({explained[0]:.1%} of variance)")
    ax.set_ylabel(f"PC 2 ({explained[1]:.1%} of variance)")
    ax.set_title(title)
    ax.grid(alpha=0.25)
    ax.legend(title="Class (clips drawn)", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
              markerscale=1.6, fontsize=8)
    return fig

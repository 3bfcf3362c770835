"""The figures of a training run (confusion matrices, scores per split and per class,
feature importance) and what every figure shares: palettes, labels, saving.

The pages' own figures (waveforms, spectrograms, class counts, PCA) are in
:mod:`classify.pages.figures`, built on the helpers here. Nothing here
computes features, fits models or reads audio: callers pass ready numbers
(score tables, matrices) and get a :class:`matplotlib.figure.Figure`
back. Figures are built with the object-oriented API on an Agg canvas, so
drawing never touches pyplot's global state or needs a display, and a figure
is freed as soon as the caller drops it (:func:`save_figure` writes a PNG).

Colours are colour-blind safe and stable: a class keeps its colour across
every figure of a page (:func:`class_palette`), a model across every figure
of a report (:func:`model_palette`).
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from features.io.atomic import atomic_path

from .registry import MODELS

__all__ = [
    "DPI",
    "MARKERS",
    "NORMAL_BAR",
    "OKABE_ITO",
    "WARN_BAR",
    "class_palette",
    "confusion_figure",
    "grid_shape",
    "importance_by_class_figure",
    "importance_figure",
    "metric_label",
    "model_palette",
    "natural_key",
    "new_figure",
    "per_class_scores_figure",
    "require_columns",
    "rotate_xticks",
    "save_figure",
    "split_scores_figure",
]

#: Okabe & Ito's colour-blind-safe palette (black moved last: it reads as "no colour").
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000")
#: PNG resolution: sharp on a laptop screen, small enough for a page with 20 figures.
DPI = 110

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
_METRIC_LABELS = {
    "accuracy": "Accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "macro_f1": "Macro F1",
    "precision": "Precision",
    "recall": "Recall",
    "f1": "F1",
    "fit_seconds": "Fit time (s)",
}
NORMAL_BAR = "#0072B2"  # Okabe-Ito blue
WARN_BAR = "#D55E00"  # Okabe-Ito vermillion
_MATRIX_CMAP = "viridis"


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
    """Colour per model name; a known model (:data:`classify.registry.MODELS`) always gets its own."""
    out: dict[str, str] = {}
    known = {name: info.colour for name, info in MODELS.items()}
    spare = list(dict.fromkeys(c for c in (*OKABE_ITO, "#999999") if c not in known.values()))
    n_unknown = 0
    for model in models:
        if model in known:
            out[model] = known[model]
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


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def require_columns(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; it has {list(df.columns)}")


def natural_key(value: object) -> tuple:
    text = str(value)
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def rotate_xticks(ax, labels: Sequence[str], *, force: bool = False) -> None:
    """Class names on the x axis: rotate as soon as they could collide."""
    ax.set_xticks(range(len(labels)))
    longest = max((len(s) for s in labels), default=0)
    if force or len(labels) * max(longest, 3) > 40:
        ax.set_xticklabels(labels, rotation=45, ha="right", rotation_mode="anchor")
    else:
        ax.set_xticklabels(labels)


def grid_shape(n: int, max_cols: int) -> tuple[int, int]:
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
    fig = new_figure(side + 1.2, side)
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps[_MATRIX_CMAP].with_extremes(bad="#dddddd")
    vmax = 1.0 if normalized else max(float(np.nanmax(values)) if np.isfinite(values).any() else 1.0, 1.0)
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0.0, vmax=vmax)
    _annotate_cells(ax, values, vmax=vmax, normalized=normalized)
    rotate_xticks(ax, [str(c) for c in matrix.columns])
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
    require_columns(scores, ["model", "split", metric], "folds table")
    if scores.empty:
        raise ValueError("folds table has no rows; nothing to plot")
    split_names = sorted({str(f) for f in scores["split"]}, key=natural_key)
    position = {name: i for i, name in enumerate(split_names)}
    models = list(dict.fromkeys(str(m) for m in scores["model"]))
    colours = model_palette(models)
    fig = new_figure(max(6.5, 0.5 * len(split_names) + 4.5), 4.2)
    ax = fig.add_subplot()
    # A small horizontal offset per model keeps equal scores from hiding each other.
    offsets = np.linspace(-0.12, 0.12, len(models)) if len(models) > 1 else [0.0]
    for k, model in enumerate(models):
        rows = scores[scores["model"].astype(str) == model]
        x = np.array([position[str(f)] for f in rows["split"]], dtype=float) + offsets[k]
        order = np.argsort(x)
        y = pd.to_numeric(rows[metric], errors="coerce").to_numpy()[order]
        ax.plot(x[order], y, marker=MARKERS[k % len(MARKERS)], color=colours[model], linewidth=1.4,
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
    require_columns(per_class, ["class", *metrics], "per-class table")
    if per_class.empty:
        raise ValueError("per-class table has no rows; nothing to plot")
    names = [str(c) for c in per_class["class"]]
    if "support" in per_class.columns:
        names = [f"{c} (n={int(s)})" for c, s in zip(names, per_class["support"], strict=True)]
    n = len(names)
    fig = new_figure(max(6.5, 0.62 * n + 3.0), 4.6)
    ax = fig.add_subplot()
    width = 0.26
    x = np.arange(n)
    for k, (metric, colour) in enumerate(zip(metrics, ("#0072B2", "#E69F00", "#009E73"), strict=True)):
        ax.bar(x + (k - 1) * width, pd.to_numeric(per_class[metric], errors="coerce"), width,
               color=colour, label=metric_label(metric))
    rotate_xticks(ax, names)
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
    require_columns(importance, ["model", "family", "class", "importance_mean", "importance_std",
                                  "metric"], "importance table")
    overall = importance[importance["class"].astype(str) == "(all)"]
    if overall.empty:
        raise ValueError("importance table has no '(all)' rows; nothing to plot")
    models = list(dict.fromkeys(str(m) for m in overall["model"]))
    means = overall.pivot(index="family", columns="model", values="importance_mean")[models]
    spread = overall.pivot(index="family", columns="model", values="importance_std")[models]
    families = list(means.mean(axis=1).sort_values().index)  # barh draws bottom-up: most important on top
    colours = model_palette(models)
    fig = new_figure(7.5, max(3.2, 0.32 * len(families) * len(models) + 1.6))
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
    require_columns(importance, ["family", "class", "importance_mean"], "importance table")
    rows = importance[importance["class"].astype(str) != "(all)"]
    if rows.empty:
        raise ValueError("importance table has no per-class rows; nothing to plot")
    matrix = rows.pivot(index="family", columns="class", values="importance_mean")
    matrix = matrix.loc[matrix.mean(axis=1).sort_values(ascending=False).index]
    matrix = matrix[sorted(matrix.columns, key=natural_key)]
    values = matrix.to_numpy(dtype=float)
    vmax = max(float(np.nanmax(np.abs(values))), 1e-3)
    fig = new_figure(max(6.0, 0.55 * matrix.shape[1] + 3.0), max(3.0, 0.45 * matrix.shape[0] + 1.8))
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto")
    ax.set_yticks(range(matrix.shape[0]))
    ax.set_yticklabels(matrix.index)
    rotate_xticks(ax, [str(c) for c in matrix.columns])
    ax.set_xlabel("Class")
    ax.set_ylabel("Feature family")
    ax.set_title(title)
    colourbar = fig.colorbar(image, ax=ax, fraction=0.05, pad=0.02)
    colourbar.set_label("Drop in recall when shuffled")
    return fig

"""Figures: the right axes, titles, labels and class names, and files that open."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from PIL import Image

from classify import plots
from classify.pages import figures
from classify.pages.spectrogram import Spectrogram

CLASSES = ["air_conditioner", "car_horn", "children_playing", "dog_bark", "drilling",
           "engine_idling", "gun_shot", "jackhammer", "siren", "street_music"]


def _confusion(n: int = 10, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    names = CLASSES[:n]
    return pd.DataFrame(rng.integers(0, 50, (n, n)), index=names, columns=names)


def _folds() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame([{"model": m, "split": f"fold{f}", "fold": f, "n_train": 90, "n_test": 10, "accuracy": rng.uniform(0.5, 0.9),
                          "balanced_accuracy": 0.6, "macro_f1": rng.uniform(0.4, 0.9), "fit_seconds": 0.1}
                         for m in ("mlp", "svm", "rf") for f in range(1, 11)])


def _tick_texts(labels) -> list[str]:
    return [t.get_text() for t in labels]


def test_confusion_figure_counts_has_class_names_rotated_ticks_and_annotations():
    matrix = _confusion(10)
    fig = plots.confusion_figure(matrix, title="svm counts", normalized=False)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_title() == "svm counts"
    assert ax.get_xlabel() == "Predicted class" and ax.get_ylabel() == "True class"
    assert _tick_texts(ax.get_xticklabels()) == CLASSES
    assert _tick_texts(ax.get_yticklabels()) == CLASSES
    assert all(t.get_rotation() == pytest.approx(45) for t in ax.get_xticklabels())
    cells = [t.get_text() for t in ax.texts]
    assert len(cells) == 100
    assert cells[0] == str(matrix.iloc[0, 0]) and cells[11] == str(matrix.iloc[1, 1])
    assert fig.axes[1].get_ylabel() == "Clips"  # the colour bar


def test_confusion_figure_normalized_uses_fixed_scale_and_two_decimals():
    matrix = _confusion(4)
    norm = matrix.div(matrix.sum(axis=1), axis=0)
    norm.iloc[3] = np.nan  # a class without clips
    fig = plots.confusion_figure(norm, title="rows", normalized=True)
    ax = fig.axes[0]
    assert ax.images[0].get_clim() == (0.0, 1.0)
    texts = [t.get_text() for t in ax.texts]
    assert texts[0] == f"{norm.iloc[0, 0]:.2f}" if norm.iloc[0, 0] else texts[0] == "0"
    assert texts[-1] == "–"
    assert "Share" in fig.axes[1].get_ylabel()


def test_confusion_figure_rejects_non_square():
    with pytest.raises(ValueError, match="square"):
        plots.confusion_figure(pd.DataFrame([[1, 2]], index=["a"], columns=["a", "b"]), title="x", normalized=False)


def test_split_scores_figure_one_series_per_model_with_metric_label():
    fig = plots.split_scores_figure(_folds(), metric="macro_f1", title="Macro F1 per split")
    ax = fig.axes[0]
    assert ax.get_title() == "Macro F1 per split"
    assert ax.get_ylabel() == "Macro F1"
    assert "fold" in ax.get_xlabel().lower()
    assert len(ax.lines) == 3
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert [s.split()[0] for s in legend] == ["mlp", "svm", "rf"]
    assert _tick_texts(ax.get_xticklabels()) == [f"fold{i}" for i in range(1, 11)]  # natural order: not fold10 second
    assert all(len(line.get_xdata()) == 10 for line in ax.lines)


def test_split_scores_figure_names_missing_column():
    with pytest.raises(ValueError, match="balanced_accuracy"):
        plots.split_scores_figure(_folds().drop(columns="balanced_accuracy"), metric="balanced_accuracy", title="x")


def test_model_colours_are_stable_across_figures():
    assert plots.model_palette(["svm", "mlp"])["svm"] == plots.model_palette(["mlp", "rf", "svm"])["svm"]
    assert len(set(plots.model_palette(["mlp", "logreg", "svm", "rf", "knn", "hgb", "extra"]).values())) == 7


def test_per_class_scores_figure_grouped_bars_with_class_names():
    per_class = pd.DataFrame({"class": CLASSES, "precision": 0.5, "recall": 0.6, "f1": 0.55, "support": 7})
    fig = plots.per_class_scores_figure(per_class, title="svm per class")
    ax = fig.axes[0]
    assert ax.get_title() == "svm per class" and ax.get_ylabel().startswith("Score")
    assert len(ax.patches) == 30
    ticks = _tick_texts(ax.get_xticklabels())
    assert ticks[0] == "air_conditioner (n=7)"
    assert ax.get_xticklabels()[0].get_rotation() == pytest.approx(45)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Precision", "Recall", "F1"]


def test_class_counts_figure_marks_under_represented_classes():
    counts = pd.Series([100, 100, 40, 90], index=["dog_bark", "siren", "gun_shot", "drilling"])
    fig = figures.class_counts_figure(counts, title="Clips per class")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Clips" and ax.get_title() == "Clips per class"
    assert _tick_texts(ax.get_yticklabels()) == ["dog_bark", "siren", "drilling", "gun_shot"]
    hatched = [p.get_hatch() for p in ax.patches[:4]]
    assert hatched == ["", "", "", "//"]
    assert any("40%" in t.get_text() for t in ax.texts)


def test_duration_histograms_one_panel_per_class():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"label": rng.choice(CLASSES[:7], 200), "duration_s": rng.uniform(0.5, 4, 200)})
    fig = figures.duration_histograms_figure(df, title="Durations", classes=CLASSES[:7])
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 7
    assert [ax.get_title().split(" (")[0] for ax in visible] == CLASSES[:7]
    assert all(ax.get_xlabel() == "Duration (s)" for ax in visible[-5:])
    assert fig.get_suptitle() == "Durations"


def _examples(kind: str, n_classes: int = 3, n_examples: int = 2):
    sr = 8000
    out = {}
    for c in CLASSES[:n_classes]:
        cells = []
        for k in range(n_examples):
            y = np.sin(np.linspace(0, 200 * (k + 1), sr)).astype(np.float32) * 0.5
            if kind == "wave":
                cells.append(figures.Waveform(y, sr, f"{c}_{k}.wav"))
            else:
                cells.append(Spectrogram(np.linspace(-80, 0, 64 * 20).reshape(64, 20), 1.0,
                                               32.0 if kind == "log" else 0.0, sr / 2, kind, f"{c}_{k}.wav"))
        out[c] = cells
    return out


def test_waveform_grid_rows_are_classes_with_time_axis():
    fig = figures.waveform_grid_figure(_examples("wave"), title="Waveforms")
    axes = fig.axes
    assert len(axes) == 6
    assert [ax.get_title().split("\n")[0] for ax in axes] == [c for c in CLASSES[:3] for _ in range(2)]
    assert axes[-1].get_xlabel() == "Time (s)" and axes[0].get_ylabel() == "Amplitude"


@pytest.mark.parametrize("scale", ["log", "mel"])
def test_spectrogram_grid_has_hz_ticks_and_db_colour_bar(scale):
    fig = figures.spectrogram_grid_figure(_examples(scale), title="Spectrograms")
    *cells, bar = fig.axes
    assert len(cells) == 6
    assert cells[0].get_ylabel() == "Frequency (Hz)" and cells[-1].get_xlabel() == "Time (s)"
    assert "dB" in bar.get_ylabel()
    fig.canvas.draw()
    ticks = _tick_texts(cells[0].get_yticklabels())
    assert "1k" in ticks and ("500" in ticks)


def test_spectrogram_rejects_bad_scale():
    with pytest.raises(ValueError, match="scale"):
        Spectrogram(np.zeros((2, 2)), 1.0, 10.0, 100.0, "linear")


def test_feature_distributions_panels_and_class_ticks():
    rng = np.random.default_rng(2)
    df = pd.DataFrame({"label": rng.choice(CLASSES[:4], 80), "spectral_centroid_mean": rng.uniform(500, 4000, 80),
                       "zcr_mean": rng.uniform(0, 0.3, 80)})
    fig = figures.feature_distributions_figure(
        df, features=[("spectral_centroid_mean", "Spectral centroid (Hz)"), ("zcr_mean", "ZCR (per sample)")],
        title="Distributions", classes=CLASSES[:4])
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 2
    assert visible[0].get_xlabel() == "Spectral centroid (Hz)"
    assert _tick_texts(visible[0].get_yticklabels()) == CLASSES[:4]


def test_feature_distributions_names_missing_column():
    with pytest.raises(ValueError, match="rms_mean"):
        figures.feature_distributions_figure(pd.DataFrame({"label": ["a"]}), features=[("rms_mean", "RMS")], title="x")


def test_pca_figure_legend_and_explained_variance_labels():
    rng = np.random.default_rng(3)
    labels = rng.choice(CLASSES, 100)
    fig = figures.pca_figure(rng.normal(size=(100, 2)), labels, explained=[0.314, 0.12], title="PCA")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "PC 1 (31.4% of variance)" and ax.get_ylabel() == "PC 2 (12.0% of variance)"
    assert [t.get_text().split(" (")[0] for t in ax.get_legend().get_texts()] == sorted(CLASSES)
    with pytest.raises(ValueError, match="one label per point"):
        figures.pca_figure(np.zeros((3, 2)), ["a"], explained=[0.5, 0.2], title="x")


def test_class_palette_is_colour_blind_safe_and_stable():
    small = plots.class_palette(["b", "a"])
    assert list(small.values()) == list(plots.OKABE_ITO[:2])
    ten = plots.class_palette(CLASSES)
    assert len(set(ten.values())) == 10


def test_save_figure_writes_png_and_creates_folders(tmp_path):
    target = tmp_path / "deep" / "er" / "cm.png"
    plots.save_figure(plots.confusion_figure(_confusion(3), title="t", normalized=False), target)
    with Image.open(target) as im:
        assert im.format == "PNG" and im.size[0] > 300
    with pytest.raises(ValueError, match=r"\.png"):
        plots.save_figure(Figure(), tmp_path / "x.jpg")


def test_save_figure_closes_pyplot_figures(tmp_path):
    plt = pytest.importorskip("matplotlib.pyplot", reason="pyplot is needed to check that it is closed")
    fig = plt.figure()
    plots.save_figure(fig, tmp_path / "p.png")
    assert fig.number not in plt.get_fignums()


def _importance() -> pd.DataFrame:
    rows = []
    for model in ("svm", "knn"):
        for family, drop in (("mfcc_mean", 0.3), ("zcr", 0.01), ("chroma", 0.1)):
            for cls in ("(all)", "dog_bark", "siren"):
                rows.append({"model": model, "family": family, "n_columns": 2, "class": cls,
                             "importance_mean": drop, "importance_std": 0.01, "n_repeats": 5,
                             "metric": "accuracy" if cls == "(all)" else "recall"})
    return pd.DataFrame(rows)


def test_importance_figure_ranks_families_and_has_a_bar_per_model():
    fig = plots.importance_figure(_importance(), title="importance")
    ax = fig.axes[0]
    assert _tick_texts(ax.get_yticklabels()) == ["zcr", "chroma", "mfcc_mean"]  # most important on top
    assert len(ax.patches) == 6 and "accuracy" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["svm", "knn"]


def test_importance_by_class_figure_is_families_by_classes():
    rows = _importance()
    fig = plots.importance_by_class_figure(rows[rows["model"] == "svm"], title="svm")
    ax = fig.axes[0]
    assert _tick_texts(ax.get_yticklabels()) == ["mfcc_mean", "chroma", "zcr"]
    assert _tick_texts(ax.get_xticklabels()) == ["dog_bark", "siren"]
    with pytest.raises(ValueError, match="no per-class rows"):
        plots.importance_by_class_figure(rows[rows["class"] == "(all)"], title="x")

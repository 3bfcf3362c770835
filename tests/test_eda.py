"""``python -m classify eda``: the exploratory page on the demo data, with and without a features table."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from pagecheck import page_text, parse_page

from classify import cli
from classify.pages import eda

N_CLASSES = 10


@pytest.fixture
def demo(demo_root) -> Path:
    """The 60-clip demo dataset shared by the suite (tests/conftest.py)."""
    return Path(demo_root)


def _features_table(root: Path, out: Path) -> Path:
    """A tiny default-preset-shaped table for the demo clips (values made up, classes apart)."""
    from features.io.datasets import discover

    clips = discover(root).clips
    rng = np.random.default_rng(0)
    codes = clips["label"].astype("category").cat.codes.to_numpy().astype(float)
    n = len(clips)
    table = clips[["path", "label", "fold", "group"]].copy()
    table["duration_s"] = rng.uniform(1.0, 4.0, n)
    table["orig_sample_rate"] = 44100
    table["orig_channels"] = 2
    for i in range(1, 5):
        table[f"mfcc_mean_{i}"] = rng.normal(codes * i, 1.0)
    table["spectral_centroid_mean"] = 1000 + 200 * codes + rng.normal(0, 50, n)
    table["spectral_bandwidth_mean"] = 1500 + rng.normal(0, 80, n)
    table["spectral_rolloff_mean"] = 3000 + 150 * codes + rng.normal(0, 80, n)
    table["zcr_mean"] = 0.05 + 0.01 * codes + rng.uniform(0, 0.01, n)
    table["rms_mean"] = rng.uniform(0.01, 0.2, n)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "features.csv", index=False)
    return out


def test_eda_without_features_table_samples_headers_and_loads_only_examples(demo, tmp_path, monkeypatch):
    import features.io.audio

    loads, infos = [], []
    real_load, real_info = features.io.audio.load_audio, sf.info
    monkeypatch.setattr(features.io.audio, "load_audio", lambda *a, **k: loads.append(a[0]) or real_load(*a, **k))
    monkeypatch.setattr(sf, "info", lambda *a, **k: infos.append(a[0]) or real_info(*a, **k))

    index = eda.build_eda(demo, features=tmp_path / "no-such-dir", out=tmp_path / "eda", examples=1,
                          info_sample=20)

    assert index == tmp_path / "eda" / "index.html"
    page = parse_page(index)
    text = page_text(page)
    assert len(loads) == N_CLASSES, "only the example clips are decoded"
    assert len(infos) <= 20, "headers are read on the sample only"
    assert {"overview", "counts", "durations", "formats", "examples", "features"} <= set(page.ids)
    assert "sample of" in text and "of the 60 clips" in text
    assert "make features" in text and "does not exist" in text
    images = {Path(unquote(src)).name for src, _ in page.images}
    assert {"class_counts.png", "durations.png", "waveforms.png", "stft.png", "mel.png"} <= images
    assert "pca.png" not in images
    assert len(page.audio) == N_CLASSES
    for src in page.audio:
        info = real_info(str(index.parent / unquote(src)))
        assert (info.samplerate, info.channels, info.subtype, info.format) == (22050, 1, "PCM_16", "WAV")
        assert src.startswith("audio/")


def test_eda_with_features_table_draws_distributions_and_pca(demo, tmp_path):
    table_dir = _features_table(demo, tmp_path / "features")
    index = eda.build_eda(demo, features=table_dir, out=tmp_path / "eda", examples=2)
    page = parse_page(index)
    text = page_text(page)
    images = {Path(unquote(src)).name for src, _ in page.images}
    assert {"feature_distributions.png", "pca.png", "mel.png", "stft.png", "waveforms.png"} <= images
    assert len(page.audio) == len(set(page.audio)) == 2 * N_CLASSES
    assert "features table's duration_s" in text
    assert "make features" not in text
    for word in ("car_horn", "gun_shot", "street_music"):
        assert word in text


def test_eda_reports_unreadable_clips_and_keeps_going(tmp_path):
    root = tmp_path / "ds"
    rng = np.random.default_rng(0)
    for label, names in (("cat", ["a.wav", "b.wav"]), ("dog", ["c.wav", "broken.wav"])):
        (root / label).mkdir(parents=True)
        for name in names:
            if name == "broken.wav":
                (root / label / name).write_text("this is not audio")
            else:
                sf.write(root / label / name, rng.normal(0, 0.1, 8000).astype("float32"), 16000, subtype="PCM_24")
    index = eda.build_eda(root, out=tmp_path / "eda", examples=2)
    page = parse_page(index)
    text = page_text(page)
    assert "could not be opened by soundfile" in text and "broken.wav" in text
    assert "Fewer examples than asked for: dog" in text
    assert len(page.audio) == 3
    assert "PCM_24" in text


def test_eda_refuses_a_folder_that_is_no_dataset(tmp_path):
    from features.errors import FeaturesError

    with pytest.raises(FeaturesError, match="empty-dataset|layout|does not"):
        eda.build_eda(tmp_path / "empty-dataset", out=tmp_path / "eda")


def test_eda_command_line_defaults_and_validation(tmp_path):
    parser = cli.build_parser("eda")
    args = parser.parse_args(["eda", str(tmp_path)])
    assert (args.dataset, args.features, args.out, args.examples, args.seed) == (tmp_path, None, None, 3, 0)
    args = parser.parse_args(["eda", str(tmp_path), "--features", "f", "--out", "o", "--examples", "2",
                              "--seed", "5"])
    assert (args.features, args.out, args.examples, args.seed) == (Path("f"), Path("o"), 2, 5)
    with pytest.raises(SystemExit):
        parser.parse_args(["eda", str(tmp_path), "--examples", "0"])


def test_eda_with_a_gtzan_style_table_uses_its_columns(tmp_path, monkeypatch):
    from classify.pages import figures

    drawn = []
    real = figures.feature_distributions_figure
    monkeypatch.setattr(figures, "feature_distributions_figure",
                        lambda table, *, features, **kw: drawn.extend(c for c, _ in features) or real(
                            table, features=features, **kw))
    root = tmp_path / "genres"
    rng = np.random.default_rng(0)
    names = []
    for label in ("blues", "rock"):
        (root / label).mkdir(parents=True)
        for k in range(3):
            name = f"{label}.{k:05d}.wav"
            sf.write(root / label / name, rng.normal(0, 0.1, 4000).astype("float32"), 8000)
            names.append((name, label))
    columns = ["chroma_stft", "rmse", "spectral_centroid", "spectral_bandwidth", "rolloff", "zero_crossing_rate",
               *[f"mfcc{i}" for i in range(1, 21)]]
    table = pd.DataFrame(rng.normal(size=(6, len(columns))), columns=columns)
    table.insert(0, "filename", [n for n, _ in names])
    table["label"] = [lab for _, lab in names]
    table.to_csv(tmp_path / "features.csv", index=False)
    index = eda.build_eda(root, features=tmp_path / "features.csv", out=tmp_path / "eda", examples=1)
    text = page_text(parse_page(index))
    assert drawn == ["spectral_centroid", "rolloff", "spectral_bandwidth", "zero_crossing_rate", "rmse",
                     "mfcc1", "mfcc2", "mfcc3", "mfcc4"]
    assert "file headers" in text, "no duration_s column: durations come from the header sample"
    assert (index.parent / "feature_distributions.png").is_file() and (index.parent / "pca.png").is_file()


def test_eda_explains_an_unusable_features_table_and_keeps_the_rest(tmp_path):
    root = tmp_path / "ds"
    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        sf.write(root / label / "a.wav", rng.normal(0, 0.1, 4000).astype("float32"), 8000)
    (tmp_path / "features.csv").write_text("path,label,zcr_mean\ncat/a.wav,cat,0.1\ndog/a.wav,dog,oops\n")
    text = page_text(parse_page(eda.build_eda(root, features=tmp_path / "features.csv", out=tmp_path / "eda",
                                          examples=1)))
    assert "could not be used" in text and "zcr_mean" in text
    assert "Clips per class" in text and "Example clips" in text

"""``features extract --frames``: the frame-level values as Parquet parts of the output set.

DuckDB recomputes the table's summaries from the parts; the parts are listed with their SHA-256; a
long clip streams into the parts in chunks; a run killed with SIGKILL resumes to the same parts.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import faults
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from features import compute
from features.compute import FeatureComputer, frame_names
from features.engine.outputs import verify_outputs
from features.errors import UsageError
from features.extract import extract_dataset
from features.io.atomic import file_sha256
from features.params import FeatureParams

duckdb = pytest.importorskip("duckdb")
REPO = Path(__file__).resolve().parents[1]
SR = 22050


def _dataset(root: Path, write_wav, n: int = 8) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        label = "ab"[i % 2]
        t = np.arange(int(SR * (0.6 + 0.1 * i))) / SR
        y = 0.3 * np.sin(2 * np.pi * (300 + 400 * (i % 2) + 30 * i) * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t))
        write_wav(root / label / f"{label}{i:02d}.wav", y + 0.01 * rng.standard_normal(t.size), SR)
    return root


def _frames(out: Path) -> pd.DataFrame:
    return duckdb.sql(f"SELECT * FROM '{out}/frames/*.parquet' ORDER BY path, frame").df()


def test_duckdb_recomputes_every_summary_column_from_the_frames(tmp_path, write_wav):
    out = tmp_path / "out"
    params = FeatureParams()
    result = extract_dataset(_dataset(tmp_path / "data", write_wav), out, params, frames=True, jobs=1, quiet=True)
    meta = verify_outputs(out)  # the parts are part of the set, checksums and all
    assert meta["frames"]["parts"] == ["frames/part-00000.parquet"] == [p.relative_to(out).as_posix()
                                                                        for p in result.frames]
    assert meta["files"]["frames/part-00000.parquet"]["sha256"] == file_sha256(out / "frames/part-00000.parquet")
    assert not (out / ".checkpoint").exists() and not (out / ".checkpoint-frames").exists()
    table = pd.read_parquet(out / "features.parquet").set_index("path")
    names = frame_names(params)
    means = ", ".join(f"avg({n}) AS {n}__mean, stddev_pop({n}) AS {n}__std" for n in names)
    summary = duckdb.sql(f"SELECT path, any_value(label) AS label, count(*) AS n, max(time_s) AS last, {means} "
                         f"FROM '{out}/frames/*.parquet' GROUP BY path").df().set_index("path").loc[table.index]
    assert (summary["label"] == table["label"]).all()
    for name in names:
        base, _, k = name.rpartition("_")
        mean_col, std_col = ((f"{base}_mean_{k}", f"{base}_std_{k}") if base in ("mfcc", "chroma")
                             else (f"{name}_mean", f"{name}_std"))
        np.testing.assert_allclose(summary[f"{name}__mean"], table[mean_col], rtol=1e-6, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(summary[f"{name}__std"], table[std_col], rtol=1e-5, atol=1e-5, err_msg=name)
    # One row per frame of the clip, centred every hop_length samples.
    n_frames = 1 + (table["duration_s"].to_numpy() * SR).round().astype(int) // params.hop_length
    np.testing.assert_array_equal(summary["n"], n_frames)
    np.testing.assert_allclose(summary["last"], (n_frames - 1) * params.hop_length / SR)


def test_rich_frames_give_the_rich_percentiles(tmp_path, write_wav):
    out = tmp_path / "out"
    params = FeatureParams(preset="rich")
    extract_dataset(_dataset(tmp_path / "data", write_wav, n=4), out, params, frames=True, jobs=1, quiet=True)
    table = pd.read_parquet(out / "features.parquet").set_index("path")
    got = duckdb.sql(f"SELECT path, quantile_cont(logmel_7, 0.9) AS p90, min(spectral_flux) AS lo "
                     f"FROM '{out}/frames/*.parquet' GROUP BY path").df().set_index("path").loc[table.index]
    np.testing.assert_allclose(got["p90"], table["logmel_7_p90"], rtol=1e-5)
    np.testing.assert_allclose(got["lo"], table["spectral_flux_min"], atol=1e-6)


def test_a_long_clip_streams_into_its_frames_chunk_by_chunk(tmp_path, write_wav, monkeypatch):
    from features.analysers import FeatureAnalyser
    from features.frames import clip_file
    from features.io import audio

    monkeypatch.setattr(audio, "BLOCKWISE_ABOVE_SAMPLES", 20_000)
    monkeypatch.setattr(audio, "BLOCK_FRAMES", 8_192)
    monkeypatch.setattr(compute, "STREAM_FRAMES", 32)
    t = np.arange(3 * SR) / SR
    path = write_wav(tmp_path / "long.wav", 0.3 * np.sin(2 * np.pi * (200 + 100 * t) * t), SR)
    params = FeatureParams()
    clip, _ = audio.read_clip(path, params)
    assert isinstance(clip, audio.LongClip)
    rows, _ = FeatureAnalyser(params, str(tmp_path / "frames")).analyse(str(path), "long.wav", ["load"])
    frames = pq.ParquetFile(clip_file(tmp_path / "frames", "long.wav"))
    assert frames.num_row_groups > 3 and max(frames.metadata.row_group(i).num_rows
                                             for i in range(frames.num_row_groups)) <= 32
    values = frames.read().to_pandas()
    whole, _ = audio.load_audio(path, params)
    expected = []
    FeatureComputer(params).compute(whole, lambda block: expected.append(block.copy()))
    np.testing.assert_allclose(values[frame_names(params)].to_numpy().T, expected[0], rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(values["frame"], np.arange(expected[0].shape[1]))
    assert rows[0][0].shape == (len(compute.feature_columns(params)),)


def test_a_failed_clip_leaves_no_frames_and_segment_tables_are_refused(tmp_path, write_wav):
    root = _dataset(tmp_path / "data", write_wav, n=2)
    (root / "a" / "broken.wav").write_text("not audio")
    out = tmp_path / "out"
    result = extract_dataset(root, out, FeatureParams(), frames=True, jobs=1, quiet=True)
    assert result.n_failed == 1
    assert set(_frames(out)["path"]) == {"a/a00.wav", "b/b01.wav"}
    with pytest.raises(UsageError, match="--frames .* cannot be combined with --segment"):
        extract_dataset(root, tmp_path / "w", FeatureParams(segment=0.5), frames=True, jobs=1, quiet=True)


def test_frames_on_then_off_keep_the_set_whole(tmp_path, write_wav):
    root = _dataset(tmp_path / "data", write_wav, n=2)
    out = tmp_path / "out"
    extract_dataset(root, out, FeatureParams(), frames=True, jobs=1, quiet=True)
    again = extract_dataset(root, out, FeatureParams(), frames=True, jobs=1, quiet=True)
    assert again.up_to_date and again.frames == [out / "frames" / "part-00000.parquet"]
    plain = extract_dataset(root, out, FeatureParams(), jobs=1, quiet=True)
    assert not plain.up_to_date, "the set asked for has no frames: it is written again"
    assert not (out / "frames" / "part-00000.parquet").exists() and "frames" not in json.loads(
        (out / "features.json").read_text())


def test_a_killed_run_resumes_to_the_same_frames(tmp_path, write_wav):
    root = _dataset(tmp_path / "data", write_wav, n=10)
    clean = tmp_path / "clean"
    extract_dataset(root, clean, FeatureParams(), frames=True, jobs=1, quiet=True)
    out = tmp_path / "out"
    args = ["extract", str(root), "--out", str(out), "--frames", "--jobs", "1", "--batch-size", "1", "--quiet"]
    faults.killed_midway(args, out)
    kept = list((out / ".checkpoint-frames").rglob("clip-*.parquet"))
    assert len(kept) >= 3 and not (out / "features.json").exists()
    again = subprocess.run(faults.command(*args), cwd=REPO, env=faults.environment(), capture_output=True,
                           text=True, check=False)
    assert again.returncode == 0, again.stderr
    assert "resumed:" in again.stdout
    pd.testing.assert_frame_equal(_frames(out), _frames(clean))

"""Ordinary labels never crash anything and come back exactly as the user wrote them.

Binary datasets label clips ``-1`` / ``+1``; others use ``1`` and ``1.0`` as
two classes, or text a spreadsheet would run (``=1+1``). Every CSV we write
guards such cells and column names with a leading ``'`` and every reader
undoes it, so the labels round-trip through the feature table, the run's
CSVs (predictions, per-class, confusion, folds), the report and predict.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from classify import cli as classify_cli
from classify.rundir import load_run
from classify.tables import load_table
from features import extract as X
from features.table import (
    guard_text,
    neutralise_formulas,
    read_csv,
    unguard_text,
    write_csv,
)

LABELS = ["-1", "+1", "1", "1.0", "=1+1"]


@pytest.fixture
def dataset(tmp_path, write_wav) -> Path:
    """Four clips per label, a manifest with a formula-like column name."""
    root = tmp_path / "ds"
    rows = ["path,label,=2+2,group"]
    for k, label in enumerate(LABELS):
        for j in range(4):
            t = np.arange(3200) / 8000
            write_wav(root / f"c{k}" / f"{j}.wav", 0.3 * np.sin(2 * np.pi * (150 + 300 * k) * t
                                                               + j), 8000)
            group = ["+7", "007", "7.50", "-0"][j]
            rows.append(f'c{k}/{j}.wav,"{label}",x{j},{group}')
    (root / "clips.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def features(tmp_path, dataset) -> Path:
    res = X.extract_dataset(dataset, tmp_path / "features", manifest=dataset / "clips.csv",
                            jobs=1, quiet=True)
    assert res.n_ok == 20
    return tmp_path / "features"


def test_guard_round_trips_every_text(tmp_path):
    texts = ["-1", "+1", "=1+1", "@a", "'=x", "''-2", "'plain", "a-b", "\tx", "", "1.0"]
    for text in texts:
        assert unguard_text(guard_text(text)) == text, text
    df = pd.DataFrame({t or "empty": [t] for t in texts})
    write_csv(df, tmp_path / "t.csv")
    back = read_csv(tmp_path / "t.csv", dtype=str, keep_default_na=False)
    assert list(back.columns) == list(df.columns)
    assert back.iloc[0].tolist() == texts
    assert list(neutralise_formulas(pd.DataFrame({"=2+2": [1]})).columns) == ["'=2+2"]


def test_the_table_keeps_labels_and_guards_headers(features):
    header = (features / "features.csv").read_text().split("\n", 1)[0].split(",")
    assert "'=2+2" in header and "=2+2" not in header
    parquet = pd.read_parquet(features / "features.parquet")
    assert "=2+2" in parquet.columns
    assert sorted(parquet["label"].unique()) == sorted(LABELS)  # text, "+1" not 1
    assert parquet["label"].dtype != np.int64
    # Typed only when no value changes: "+7", "007", "7.50", "-0" keep the group text.
    assert sorted(parquet["group"].unique()) == ["+7", "-0", "007", "7.50"]
    schema = pd.read_csv(features / "features.schema.csv", dtype=str)
    row = schema[schema["column"] == "'=2+2"].iloc[0]
    assert "name starts with =" in row["description"]
    for table in ("features.csv", "features.parquet"):
        loaded = load_table(features / table)
        assert "=2+2" in loaded.df.columns and "=2+2" not in loaded.feature_columns
        assert sorted(loaded.classes) == sorted(LABELS)


def test_labels_round_trip_through_training_the_report_and_predict(tmp_path, dataset, features,
                                                                    capsys):
    run = tmp_path / "run"
    argv = ["train", str(features / "features.csv"), "--out", str(run), "--models", "logreg,knn",
            "--cv", "group", "--k", "2", "--jobs", "1", "--quiet"]
    assert classify_cli.main(argv) == 0, capsys.readouterr().err
    r = load_run(run)
    assert set(r.predictions["label"]) == set(LABELS)
    assert set(r.predictions["predicted"]) <= set(LABELS)
    assert set(r.per_class["class"]) == set(LABELS)
    counts = r.confusion("logreg", "counts")
    assert sorted(counts.index) == sorted(LABELS) == sorted(counts.columns)
    assert int(counts.to_numpy().sum()) == 20
    assert json.loads((run / "run.json").read_text())["classes"] == sorted(LABELS)
    # The confusion CSV guards its header as it guards its cells.
    raw = (run / "confusion" / "logreg_counts.csv").read_text().split("\n", 1)[0]
    assert "'-1" in raw and "'+1" in raw and "'=1+1" in raw

    assert classify_cli.main(["report", str(run)]) == 0
    html = (run / "report" / "index.html").read_text()
    assert "+1" in html and "=1+1" in html and "&#39;-1" not in html

    out = tmp_path / "predictions.csv"
    assert classify_cli.main(["predict", "--model", str(run / "model"), str(dataset / "c1"),
                              "--out", str(out)]) == 0
    predicted = read_csv(out, dtype=str, keep_default_na=False)
    assert set(predicted["predicted"]) <= set(LABELS)
    assert {c for c in predicted.columns if c.startswith("prob_")} == {f"prob_{c}" for c in LABELS}

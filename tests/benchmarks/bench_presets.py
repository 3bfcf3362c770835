"""Benchmark: the rich preset against the default one, on two data sets, same models, same protocol.

For each data set, features are extracted with ``--preset default`` (114
columns) and ``--preset rich`` (2,110 columns), then ``classify train``
compares the same models under the data set's own protocol; the benchmark
prints each model's accuracy (mean over splits) with both presets and the
training wall time of each preset (goal: rich within 3x of default).

Data sets:

1. the demo (``features.demo``, UrbanSound8K's layout and its 10 folds);
2. "instruments", made here: 6 classes of synthetic notes told apart by how
   they move in time (pluck, bowed, tremolo, vibrato, swell, staccato) at
   random pitches and brightness, with 5 "players" per class whose room
   noise and level differ (a folders layout with a manifest; the player is
   the group, so grouped CV keeps each player on one side).

Options: ``--clips`` (default 600 for each set), ``--models``.
Run: ``.venv/bin/python tests/benchmarks/bench_presets.py`` (``make bench``).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_features import BENCH, REPO, claim_bench

GOAL_TRAIN_FACTOR = 3.0
SR = 22050
INSTRUMENTS = ("pluck", "bowed", "tremolo", "vibrato", "swell", "staccato")
PLAYERS = 5


def _run(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args[:3])} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def _note(kind: str, rng: np.random.Generator, seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    f0 = rng.uniform(110, 660)
    bright = rng.uniform(0.3, 0.9)
    freq = np.full_like(t, f0)
    if kind == "vibrato":
        freq = f0 * (1 + 0.02 * np.sin(2 * np.pi * rng.uniform(4, 7) * t))
    phase = 2 * np.pi * np.cumsum(freq) / SR
    tone = sum(bright ** (h - 1) * np.sin(h * phase) for h in range(1, 9))
    envelope = {
        "pluck": np.exp(-t * rng.uniform(3, 6)),
        "bowed": np.minimum(1, t / 0.4) * np.minimum(1, (seconds - t) / 0.2),
        "tremolo": 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(5, 9) * t),
        "vibrato": np.minimum(1, t / 0.1),
        "swell": (t / seconds) ** 2,
        "staccato": (np.sin(2 * np.pi * rng.uniform(3, 5) * t) > 0.6).astype(float),
    }[kind]
    return tone * envelope


def make_instruments(root: Path, n_clips: int, seed: int = 0) -> Path:
    """The instruments data set (see the module docstring) with its manifest; kept when already made."""
    manifest = root / "manifest.csv"
    if manifest.is_file() and len(manifest.read_text().splitlines()) == n_clips + 1:
        return manifest
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(seed)
    rows = ["path,label,group"]
    rooms = {(k, p): (rng.uniform(0.005, 0.05), rng.uniform(0.2, 0.8)) for k in INSTRUMENTS for p in range(PLAYERS)}
    for i in range(n_clips):
        kind = INSTRUMENTS[i % len(INSTRUMENTS)]
        player = int(rng.integers(PLAYERS))
        noise, level = rooms[(kind, player)]
        y = _note(kind, rng)
        y = level * y / max(np.abs(y).max(), 1e-9) + noise * rng.standard_normal(y.size)
        rel = f"{kind}/{kind}_{i:04d}.wav"
        (root / kind).mkdir(parents=True, exist_ok=True)
        sf.write(root / rel, np.clip(y, -1, 1), SR, subtype="PCM_16")
        rows.append(f"{rel},{kind},{kind}-player{player}")
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


def compare(name: str, root: Path, manifest: Path | None, models: str) -> dict:
    results = {}
    for preset in ("default", "rich"):
        out, run = BENCH / f"presets_{name}_{preset}", BENCH / f"presets_{name}_{preset}_run"
        shutil.rmtree(run, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
        extra = ["--layout", "manifest", "--manifest", str(manifest)] if manifest else []
        _run("-m", "features", "extract", str(root), "--out", str(out), "--preset", preset, "--jobs", "0",
             "--quiet", *extra)
        start = time.perf_counter()
        _run("-m", "classify", "train", str(out / "features.parquet"), "--out", str(run), "--models", models,
             "--jobs", "0", "--quiet")
        seconds = time.perf_counter() - start
        info = json.loads((run / "run.json").read_text())
        leaderboard = pd.read_csv(run / "leaderboard.csv")
        board = dict(zip(leaderboard["model"], leaderboard["accuracy_mean"], strict=True))
        board.pop("nested", None)
        results[preset] = {"seconds": seconds, "accuracy": board, "protocol": info["protocol"]["name"],
                           "n_features": info["n_features"]}
    d, r = results["default"], results["rich"]
    print(f"  {name}: protocol {d['protocol']}; {d['n_features']} vs {r['n_features']} feature columns")
    print(f"  {'model':8s} {'default':>8s} {'rich':>8s}")
    for model in d["accuracy"]:
        print(f"  {model:8s} {d['accuracy'][model]:8.3f} {r['accuracy'].get(model, float('nan')):8.3f}")
    factor = r["seconds"] / d["seconds"]
    print(f"  training wall time: default {d['seconds']:.0f} s, rich {r['seconds']:.0f} s: {factor:.2f}x "
          f"(goal <= {GOAL_TRAIN_FACTOR:g}x: {'PASS' if factor <= GOAL_TRAIN_FACTOR else 'FAIL'})")
    return {"default": d, "rich": r, "train_factor": factor, "ok": factor <= GOAL_TRAIN_FACTOR}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=600)
    parser.add_argument("--models", default="mlp,logreg,svm,rf,knn,hgb")
    args = parser.parse_args(argv)
    claim_bench()
    demo = BENCH / "presets_demo_data"
    if not (demo / "metadata").is_dir():
        _run("-m", "features", "demo-data", str(demo), "--clips", str(args.clips))
    instruments = BENCH / "presets_instruments_data"
    manifest = make_instruments(instruments, args.clips)
    results = {}
    print("(1) the demo")
    results["demo"] = compare("demo", demo, None, args.models)
    print("(2) instruments (made here)")
    results["instruments"] = compare("instruments", instruments, manifest, args.models)
    (BENCH / "presets.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

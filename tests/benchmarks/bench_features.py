"""Benchmark: our feature extractor against the GTZAN/UrbanSound8K tutorial loop.

Run by ``make bench`` (or ``python tests/benchmarks/bench_features.py``).
It generates (once, cached under ``data/bench/clips``) 4-second 44.1 kHz
stereo 16-bit WAV clips of mixed content, then times, in one go:

(a) the tutorial loop: sequential ``librosa.load`` then separate
    ``librosa.feature.chroma_stft, rms, spectral_centroid,
    spectral_bandwidth, spectral_rolloff, zero_crossing_rate, mfcc`` calls
    (``n_mfcc=40``) per clip, with means and stds over frames;
(b) ``python -m features extract`` with every core (a subprocess, so
    start-up is included);
(c) the same with ``--jobs 1``;
(d) ``--preset rich --jobs 1`` (2,110 columns) against ``--preset default
    --jobs 1``, both writing Parquet only: goal >= 0.6 of the default
    preset's clips/s per core; and the same with the CSV too (formatting
    2,110 numbers per row as text costs the parent more than the features);
(e) ``--frames`` (the frame-level values as Parquet parts) against (d)'s
    default-preset run: its overhead, and the size of the parts.

It prints clips/s of each, the ratios b/a and c/a against the goals
(b >= 6x a, c >= 3x a), checks that tables (b) and (c) are byte-identical
and that our numbers equal the tutorial loop's (relative 1e-3).

Options: ``--clips N`` (default 500) for a quicker run; ``--quick`` times the
tutorial loop on a subset and extrapolates (the default runs all of it).
Exit status 1 if (b) and (c) differ or the numbers do not match.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "data" / "bench"
CLIPS = BENCH / "clips"
MARKER = CLIPS / ".generated"
GENERATOR_VERSION = 1
SR = 44100
SECONDS = 4.0
KINDS = ("tones", "chirp", "noise", "clicks", "chords", "pulses", "quiet")
GOAL_ALL, GOAL_ONE = 6.0, 3.0
GOAL_RICH = 0.6
QUICK_SUBSET = 40


# ---------------------------------------------------------------- clip synthesis


def _synth(kind: str, rng: np.random.Generator) -> np.ndarray:
    """One 4 s stereo clip, float in [-1, 1], shape (n, 2)."""
    n = int(SR * SECONDS)
    t = np.arange(n) / SR
    if kind == "tones":
        f0 = rng.uniform(80, 800)
        y = sum(rng.uniform(0.1, 1) / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 8))
    elif kind == "chirp":
        f0, f1 = rng.uniform(100, 500), rng.uniform(2000, 9000)
        y = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * SECONDS)))
    elif kind == "noise":
        white = rng.standard_normal(n)
        spectrum = np.fft.rfft(white) / np.maximum(np.arange(n // 2 + 1), 1) ** rng.uniform(0, 1)
        y = np.fft.irfft(spectrum, n)
    elif kind == "clicks":
        y = np.zeros(n)
        y[rng.integers(0, n, size=int(rng.integers(5, 60)))] = rng.uniform(-1, 1, size=1)
        y = np.convolve(y, np.exp(-np.arange(400) / 40.0), mode="same")
    elif kind == "chords":
        y = sum(np.sin(2 * np.pi * 220 * 2 ** (s / 12) * t) for s in rng.choice(24, 3))
    elif kind == "pulses":
        env = (np.sin(2 * np.pi * rng.uniform(1, 8) * t) > 0).astype(float)
        y = env * rng.standard_normal(n) + 0.3 * np.sin(2 * np.pi * rng.uniform(50, 120) * t)
    else:  # quiet: room tone
        y = 1e-3 * rng.standard_normal(n)
    y = np.asarray(y, dtype=np.float64)
    y = y / max(np.max(np.abs(y)), 1e-12) * rng.uniform(0.05, 0.9)
    right = np.roll(y, int(rng.integers(0, 200))) * rng.uniform(0.5, 1.0)
    return np.stack([y, right], axis=1)


def _clip_path(i: int) -> Path:
    kind = KINDS[i % len(KINDS)]
    return CLIPS / kind / f"bench_{i:05d}.wav"


def claim_bench() -> Path:
    """``data/bench``, marked as generated (``make clean`` removes it whole); refused if it is a user's.

    data/README invites datasets under ``data/``: a ``data/bench`` made by
    someone else is never written into (nor, then, removed by ``make clean``).
    """
    marker = BENCH / ".generated"
    if BENCH.is_dir() and any(BENCH.iterdir()) and not marker.is_file():
        raise SystemExit(f"{BENCH} holds files that make bench did not write; move them (or "
                         "the folder) away, then run make bench again")
    BENCH.mkdir(parents=True, exist_ok=True)
    marker.touch()
    return BENCH


def ensure_clips(n: int) -> list[Path]:
    """Generate clips 0..n-1 unless the cache already has them."""
    import soundfile as sf

    claim_bench()
    have = 0
    if MARKER.is_file():
        info = json.loads(MARKER.read_text())
        if info.get("version") == GENERATOR_VERSION:
            have = int(info.get("clips", 0))
    paths = [_clip_path(i) for i in range(n)]
    missing = [i for i, p in enumerate(paths) if i >= have or not p.is_file()]
    if not missing:
        return paths
    print(f"generating {len(missing)} benchmark clips in {CLIPS} ...", flush=True)
    for i in missing:
        rng = np.random.default_rng([2024, i])
        paths[i].parent.mkdir(parents=True, exist_ok=True)
        sf.write(paths[i], _synth(KINDS[i % len(KINDS)], rng), SR, subtype="PCM_16")
    MARKER.write_text(json.dumps({"version": GENERATOR_VERSION, "clips": max(n, have)}))
    return paths


def write_manifest(paths: list[Path], root: Path = CLIPS) -> Path:
    manifest = BENCH / f"manifest_{root.name}_{len(paths)}.csv"
    lines = ["path,label"] + [f"{p.relative_to(root).as_posix()},{p.parent.name}" for p in paths]
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


# ------------------------------------------------------------------------ (a)


def tutorial_features(path: Path) -> np.ndarray:
    """What the tutorials do: load, then one librosa call per feature."""
    import librosa

    y, sr = librosa.load(path)
    parts = [
        librosa.feature.mfcc(y=y, sr=sr, n_mfcc=40),
        librosa.feature.chroma_stft(y=y, sr=sr),
        librosa.feature.spectral_centroid(y=y, sr=sr),
        librosa.feature.spectral_bandwidth(y=y, sr=sr),
        librosa.feature.spectral_rolloff(y=y, sr=sr),
        librosa.feature.zero_crossing_rate(y),
        librosa.feature.rms(y=y),
    ]
    # Same order as our columns: mfcc means then stds, chroma means then stds,
    # then a mean/std pair per scalar feature.
    return np.concatenate([stat for block in parts for stat in (block.mean(axis=1), block.std(axis=1))])


def run_tutorial(paths: list[Path], quick: bool) -> tuple[float, dict[str, np.ndarray]]:
    """Clips/s of the tutorial loop (extrapolated from a subset if ``quick``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        tutorial_features(paths[0])  # warm-up (numba compilation), not timed: in (a)'s favour
    timed = paths[:QUICK_SUBSET] if quick else paths
    results = {}
    with warnings.catch_warnings():
        # librosa warns about tuning estimation on the near-silent clips; noise here.
        warnings.simplefilter("ignore", UserWarning)
        start = time.perf_counter()
        for p in timed:
            results[p.relative_to(CLIPS).as_posix()] = tutorial_features(p)
        elapsed = time.perf_counter() - start
    return len(timed) / elapsed, results


# -------------------------------------------------------------------- (b), (c)


def run_ours(manifest: Path, n: int, jobs: int, out: Path, preset: str = "default", fmt: str = "csv",
             extra: tuple[str, ...] = ()) -> float:
    """Clips/s of ``python -m features extract`` in a fresh process."""
    import shutil

    shutil.rmtree(out, ignore_errors=True)  # no checkpoint reuse
    cmd = [sys.executable, "-m", "features", "extract", str(CLIPS), "--manifest", str(manifest),
           "--out", str(out), "--jobs", str(jobs), "--format", fmt, "--quiet", "--preset", preset, *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"extractor failed ({proc.returncode}):\n{proc.stderr}")
    print(f"    {proc.stdout.strip()}")
    return n / elapsed


def compare_numbers(table: Path, reference: dict[str, np.ndarray]) -> float:
    """Largest relative difference between our table and the tutorial loop."""
    import pandas as pd

    df = pd.read_csv(table).set_index("path")
    features = [c for c in df.columns if c.startswith(("mfcc_", "chroma_", "spectral_", "zcr_", "rms_"))]
    worst = 0.0
    for path, ref in reference.items():
        ours = df.loc[path, features].to_numpy(dtype=float)
        scale = np.maximum(np.abs(ref), 1e-6 * np.max(np.abs(ref)) + 1e-12)
        worst = max(worst, float(np.max(np.abs(ours - ref) / scale)))
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=500, help="number of clips (default 500)")
    parser.add_argument("--quick", action="store_true",
                        help=f"time the tutorial loop on {QUICK_SUBSET} clips and extrapolate")
    args = parser.parse_args(argv)
    if args.clips < 1:
        parser.error(f"--clips {args.clips} must be at least 1")
    os.chdir(REPO)
    paths = ensure_clips(args.clips)
    manifest = write_manifest(paths)
    n = len(paths)
    cores = os.cpu_count() or 1
    print(f"{n} clips of {SECONDS:g} s, {SR} Hz stereo 16-bit; {cores} cores")

    print("(a) tutorial loop" + (f" (timed on {QUICK_SUBSET} clips)" if args.quick else ""))
    a, reference = run_tutorial(paths, args.quick)
    print("(b) python -m features extract --jobs 0 (all cores)")
    b = run_ours(manifest, n, 0, BENCH / "out_all")
    print("(c) python -m features extract --jobs 1")
    c = run_ours(manifest, n, 1, BENCH / "out_one")
    print("(d) python -m features extract --preset rich|default --jobs 1 --format parquet, then rich with csv")
    d_default = run_ours(manifest, n, 1, BENCH / "out_default_pq", fmt="parquet")
    d = run_ours(manifest, n, 1, BENCH / "out_rich_pq", preset="rich", fmt="parquet")
    d_csv = run_ours(manifest, n, 1, BENCH / "out_rich", preset="rich")
    print("(e) python -m features extract --jobs 1 --format parquet --frames")
    e = run_ours(manifest, n, 1, BENCH / "out_frames", fmt="parquet", extra=("--frames",))
    frames_mb = sum(p.stat().st_size for p in (BENCH / "out_frames" / "frames").glob("*.parquet")) / 1e6

    same = (BENCH / "out_all" / "features.csv").read_bytes() == (
        BENCH / "out_one" / "features.csv").read_bytes()
    worst = compare_numbers(BENCH / "out_one" / "features.csv", reference)
    print()
    print(f"  (a) tutorial loop      {a:8.1f} clips/s")
    print(f"  (b) ours, all cores    {b:8.1f} clips/s   b/a = {b / a:5.2f}x  "
          f"(goal >= {GOAL_ALL:g}x: {'PASS' if b / a >= GOAL_ALL else 'FAIL'})")
    print(f"  (c) ours, --jobs 1     {c:8.1f} clips/s   c/a = {c / a:5.2f}x  "
          f"(goal >= {GOAL_ONE:g}x: {'PASS' if c / a >= GOAL_ONE else 'FAIL'})")
    print(f"  (d) --jobs 1, Parquet: default {d_default:.1f} clips/s, rich {d:.1f} clips/s: rich/default = "
          f"{d / d_default:5.2f} (goal >= {GOAL_RICH:g}: {'PASS' if d / d_default >= GOAL_RICH else 'FAIL'}); "
          f"with the CSV too: rich {d_csv:.1f} clips/s, {d_csv / c:.2f} of (c)")
    print(f"  (e) --frames, --jobs 1, Parquet: {e:.1f} clips/s = {e / d_default:.2f} of the same run without "
          f"(frames: {frames_mb:.0f} MB for {n} clips)")
    print(f"  tables (b) and (c) byte-identical: {'PASS' if same else 'FAIL'}")
    print(f"  max relative difference vs the tutorial loop on {len(reference)} clips: "
          f"{worst:.2e} ({'PASS' if worst <= 1e-3 else 'FAIL'}, tolerance 1e-3)")
    return 0 if same and worst <= 1e-3 else 1


if __name__ == "__main__":
    sys.exit(main())

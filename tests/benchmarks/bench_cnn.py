"""Benchmark: the CNN (classify.cnn) on the demo's log-mel patches, one fold and ten.

Builds once, under ``data/bench/cnn``, a demo dataset (``--clips``, default
1000) and its patches (``python -m features patches``), then:

(a) fits :class:`~classify.cnn.KerasCNNClassifier` with its defaults on
    folds 2-10 and tests on fold 1, without and with augmentation
    (``Augmentation()``), in this process with single-threaded TensorFlow
    (as a training worker), and prints wall and CPU seconds, epochs and
    accuracy, and the 10-fold time extrapolated for 1 and 2 workers;
(b) unless ``--one-fold``, runs all 10 folds in 2 worker processes (one
    single-threaded fit each, as ``train --jobs 2`` runs splits) and prints
    the wall time against the 6-minute goal and the pooled accuracy.

Timings on a shared machine are noisy: CPU seconds say what a fold costs,
wall seconds what it took. Run: ``.venv/bin/python tests/benchmarks/bench_cnn.py``.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "data" / "bench" / "cnn"
GOAL_SECONDS = 360.0


def build(clips: int) -> Path:
    """Demo clips and their patches, made once per clip count."""
    root, out = BENCH / f"demo{clips}", BENCH / f"patches{clips}"
    if not (out / "patches.json").is_file():
        run = [sys.executable, "-m", "features"]
        if not root.is_dir():
            subprocess.run([*run, "demo-data", str(root), "--clips", str(clips)], check=True)
        subprocess.run([*run, "patches", str(root), "--out", str(out)], check=True)
    return out


def fit_fold(folder: str, fold: int, augmented: bool) -> dict:
    """Fit on every fold but ``fold``, test on ``fold``; single-threaded like a training worker."""
    from threadpoolctl import threadpool_limits

    from classify.mlp import import_keras

    import_keras(threads=1)
    from classify.augment import Augmentation
    from classify.cnn import KerasCNNClassifier
    from features.patches import read_patches

    data = read_patches(folder)
    index = data["index"]
    folds = np.asarray(index["fold"])
    test, train = np.flatnonzero(folds == fold), np.flatnonzero(folds != fold)
    X, y = data["patches"], np.asarray(index["label"])
    augment = Augmentation.for_patches(data["params"]) if augmented else None
    clf = KerasCNNClassifier(augment=augment)
    with threadpool_limits(limits=1):
        wall, cpu = time.perf_counter(), time.process_time()
        clf.fit(X[train], y[train], groups=np.asarray(index["group"])[train],
                stereo_rows=np.asarray(index["stereo_row"])[train],
                channels=data["channels"], noise=data["noise"])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        correct = int((clf.predict(X[test]) == y[test]).sum())
    return {"fold": fold, "wall": wall, "cpu": cpu, "epochs": clf.n_epochs_,
            "correct": correct, "n": len(test), "extra": sum(clf.augmented_.values())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=1000)
    parser.add_argument("--one-fold", action="store_true", help="only (a)")
    args = parser.parse_args(argv)
    folder = str(build(args.clips))
    for augmented in (False, True):
        r = fit_fold(folder, 1, augmented)
        name = "with augmentation" if augmented else "no augmentation"
        print(f"(a) one fold, {name}: {r['wall']:.1f} s wall, {r['cpu']:.1f} s CPU, "
              f"{r['epochs']} epochs, {r['extra']} extra examples, accuracy {r['correct'] / r['n']:.2f}; "
              f"10 folds ~ {10 * r['wall']:.0f} s with 1 worker, ~ {5 * r['wall']:.0f} s with 2")
    if args.one_fold:
        return 0
    from joblib import Parallel, delayed

    for augmented in (False, True):
        start = time.perf_counter()
        rows = Parallel(n_jobs=2, backend="loky")(
            delayed(fit_fold)(folder, k, augmented) for k in range(1, 11))
        wall = time.perf_counter() - start
        accuracy = sum(r["correct"] for r in rows) / sum(r["n"] for r in rows)
        verdict = "PASS" if wall <= GOAL_SECONDS else "FAIL"
        print(f"(b) 10 folds in 2 workers, {'with' if augmented else 'no'} augmentation: "
              f"{wall:.0f} s wall (goal {GOAL_SECONDS:.0f} s: {verdict}), mean fold "
              f"{np.mean([r['cpu'] for r in rows]):.1f} s CPU, accuracy {accuracy:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

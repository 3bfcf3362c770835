"""Benchmark: the CNN through ``classify train`` on the demo, and what it adds to ``make demo``.

Builds once, under ``data/bench/cnn``, a demo dataset (``--clips``, default
1000), its feature table and its patches (the ``features`` commands), then:

(a) runs the ``train`` command's own code path
    (:func:`classify.training.train`) with ``--models cnn,cnn_aug`` under the
    demo's 10 official folds with every core, and prints, per model, the
    10-fold wall time against the 6-minute goal, the accuracy, and the
    final refit of the better one;
(b) with ``--demo``, times the ``make demo`` sequence step by step in a
    fresh folder, as the Makefile runs it (``demo-data``, ``features
    extract``, ``classify train`` with the six tabular models, ``eda``,
    ``report``), then again with the CNN (``features patches`` and
    ``--models ...,cnn``), against the 8-minute goal.

With ``--one-fold`` it instead fits one fold of each CNN model exactly as
a ``train`` worker does (:func:`classify.validation.fit_split`, one thread),
to extrapolate the 10-fold cost of larger sets: ``--clips 8732`` is
UrbanSound8K's size.

Timings on a shared machine are noisy: the load average is printed with
them. Run: ``make bench`` or ``.venv/bin/python tests/benchmarks/bench_cnn.py [--demo]``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "data" / "bench" / "cnn"
CNN_GOAL_SECONDS = 360.0
DEMO_GOAL_SECONDS = 480.0
TABULAR = "mlp,logreg,svm,rf,knn,hgb"


def _run(*args: str, cwd: Path = REPO) -> float:
    """Run ``python -m ...`` (quietly); its wall time in seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", *args], check=True, cwd=cwd, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def _load() -> str:
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def build(clips: int) -> tuple[Path, Path]:
    """(feature table, patches folder) of a demo dataset, made once per clip count."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_features import claim_bench

    claim_bench()
    root, out = BENCH / f"demo{clips}", BENCH / f"output{clips}"
    if not (root / "metadata" / "UrbanSound8K.csv").is_file():
        _run("features", "demo-data", str(root), "--clips", str(clips))
    if not (out / "features" / "features.json").is_file():
        _run("features", "extract", str(root), "--out", str(out / "features"))
    if not (out / "patches" / "patches.json").is_file():
        _run("features", "patches", str(root), "--out", str(out / "patches"))
    return out / "features" / "features.parquet", out / "patches"


def bench_train(table: Path, patches: Path, models: str) -> int:
    """(a): the CNN models' 10 folds through ``train``, every core."""
    from classify.options import TrainOptions
    from classify.training import train

    print(f"train --models {models} on {table} ({_load()})", flush=True)
    started = time.perf_counter()
    result = train(table, table.parent.parent / "run_cnn", TrainOptions(models=models, cv="folds", quiet=True),
                   patches=patches, log=lambda line: None, force=True)
    total = time.perf_counter() - started
    board = result.leaderboard.set_index("model")
    failed = False
    chance = 1 / len(result.table.classes)
    for name in result.results:
        accuracy = result.folds[result.folds["model"] == name].set_index("split")["accuracy"]
        restarts = int(result.folds.loc[result.folds["model"] == name, "restarts"].sum())
        lowest = accuracy.min()
        verdict = "PASS" if lowest >= 2 * chance else "FAIL"
        failed |= verdict == "FAIL"
        print(f"(a) {name:<8} per fold: {', '.join(f'{a:.2f}' for a in accuracy)}; lowest "
              f"{lowest:.3f} (goal: no fold below twice chance, {2 * chance:.2f}: {verdict}); "
              f"{restarts} restarted fit(s)", flush=True)
    for name in result.results:
        wall = result.timings["cv_wall_seconds"][name]
        verdict = "PASS" if wall <= CNN_GOAL_SECONDS else "FAIL"
        failed |= verdict == "FAIL"
        print(f"(a) {name:<8} {result.protocol.n_splits} folds: {wall:.0f} s wall (goal "
              f"{CNN_GOAL_SECONDS:.0f} s: {verdict}), fit {result.results[name].fit_seconds:.0f} s "
              f"summed over folds, accuracy {board.loc[name, 'accuracy_mean']:.3f} ± "
              f"{board.loc[name, 'accuracy_std']:.3f}")
    print(f"(a) final refit of {result.final_model} on all {result.table.n_rows} clips: "
          f"{result.timings.get('final_fit_seconds', 0):.0f} s; whole train command {total:.0f} s ({_load()})")
    return int(failed)


def bench_one_fold(table: Path, patches: Path, models: str) -> int:
    """One fold (fold 1 held out) of each model, in this process, as a train worker fits it."""
    from classify.models import group_fit_params, make_pipeline
    from classify.table_patches import attach_patches
    from classify.tables import load_table
    from classify.validation import SplitTask, fit_split

    table, rows, _, _ = attach_patches(load_table(table), patches)
    folds = table.folds.to_numpy(dtype=float)
    test, train = (folds == 1).nonzero()[0], (folds != 1).nonzero()[0]
    for name in models.split(","):
        pipe = make_pipeline(name, patch_params=rows.params)
        task = SplitTask("fold1", train=train, test=test,
                         fit_params=group_fit_params(pipe, table.groups[train]))
        started, cpu = time.perf_counter(), time.process_time()
        outcome = fit_split(pipe, rows, table.y, table.classes, task)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        accuracy = (table.classes[outcome.proba.argmax(axis=1)] == table.y[test]).mean()
        print(f"one fold of {name}: {len(train)} training clips, {wall:.0f} s wall, {cpu:.0f} s CPU, "
              f"accuracy {accuracy:.3f}; 10 folds ~ {10 * wall:.0f} s on 1 core, ~ {5 * wall:.0f} s "
              f"on 2 ({_load()})", flush=True)
    return 0


def bench_demo(clips: int) -> int:
    """(b): the ``make demo`` sequence, without and with the CNN, step by step."""
    totals = {}
    for with_cnn in (False, True):
        work = BENCH / ("demo_cnn" if with_cnn else "demo_plain")
        shutil.rmtree(work, ignore_errors=True)
        data, out = work / "data" / "demo", work / "data" / "output" / "demo"
        models = f"{TABULAR},cnn" if with_cnn else TABULAR
        steps = [("demo-data", ["features", "demo-data", str(data), "--clips", str(clips), "--seed", "0"]),
                 ("features", ["features", "extract", str(data), "--out", str(out / "features"),
                               "--preset", "default", "--jobs", "0"])]
        if with_cnn:
            steps.append(("patches", ["features", "patches", str(data), "--out", str(out / "patches"),
                                      "--jobs", "0"]))
        steps += [("train", ["classify", "train", str(out / "features" / "features.parquet"), "--out",
                             str(out / "run"), "--models", models, "--cv", "auto", "--seed", "0"]),
                  ("eda", ["classify", "eda", str(data), "--features", str(out / "features"), "--out",
                           str(out / "eda")]),
                  ("report", ["classify", "report", str(out / "run")])]
        times = {}
        for name, args in steps:
            times[name] = _run(*args)
        totals[with_cnn] = sum(times.values())
        shown = ", ".join(f"{k} {v:.0f} s" for k, v in times.items())
        verdict = "PASS" if totals[with_cnn] <= DEMO_GOAL_SECONDS else "FAIL"
        print(f"(b) make demo {'with' if with_cnn else 'without'} the CNN (--models {models}): "
              f"{totals[with_cnn]:.0f} s (goal {DEMO_GOAL_SECONDS:.0f} s: {verdict}): {shown} ({_load()})",
              flush=True)
    return int(totals[True] > DEMO_GOAL_SECONDS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=1000)
    parser.add_argument("--models", default="cnn,cnn_aug", help="models of (a) (default: %(default)s)")
    parser.add_argument("--demo", action="store_true", help="also (b): make demo without and with the CNN")
    parser.add_argument("--one-fold", action="store_true",
                        help="instead of (a): one fold of each model, to extrapolate larger sets")
    args = parser.parse_args(argv)
    table, patches = build(args.clips)
    if args.one_fold:
        return bench_one_fold(table, patches, args.models)
    status = bench_train(table, patches, args.models)
    if args.demo:
        status |= bench_demo(args.clips)
    return status


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the full model comparison on a table shaped like UrbanSound8K's.

Synthesises 8,732 rows like the default preset's table (10 classes with
UrbanSound8K's class sizes, 10 predefined folds, fsID recording groups kept
inside one fold, the same metadata columns, features of very different
scales), then runs the ``train`` command's own code path
(:func:`classify.training.train`: all six models, 10 folds, outputs, final
refit) and prints the total wall time, the time of every model, and
PASS/FAIL against the 10-minute goal.

Features are class means in a small latent space plus a per-recording
offset plus noise: learnable, not trivial, and leaky splits would score
visibly higher than grouped ones.

With ``--tune-on TABLE`` it measures ``--tune`` instead, on a real table
(the demo's: ``python -m features demo-data DIR --clips 1000`` then
``python -m features extract DIR --out OUT``): the same models under the
table's official folds, untuned then tuned, and prints the accuracy of
each model both ways, the wall-time factor of ``--tune`` (goal: at most
about :data:`TUNE_GOAL_FACTOR`) and what the permutation importance costs;
then ``--select nested``: its wall time against ``--tune``'s (goal: at most
:data:`NESTED_GOAL_FACTOR` times), the nested estimate beside the best of
the models, and which model each training part chose.

Run: ``make bench`` or ``.venv/bin/python tests/benchmarks/bench_train.py``
(``--tune-on data/output/demo/features/features.parquet``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from classify.options import TrainOptions
from classify.record import leaderboard_text
from classify.training import train
from features.compute import feature_columns
from features.io.atomic import write_json
from features.params import FeatureParams
from features.schema import build_schema
from features.table import write_csv, write_table

# UrbanSound8K's classes and their clip counts (8,732 in all).
US8K_CLASSES = {
    "air_conditioner": 1000, "car_horn": 429, "children_playing": 1000, "dog_bark": 1000,
    "drilling": 1000, "engine_idling": 1000, "gun_shot": 374, "jackhammer": 1000,
    "siren": 929, "street_music": 1000,
}
GOAL_SECONDS = 600.0
TUNE_GOAL_FACTOR = 5.0
#: --select nested may cost at most this many times --tune's wall time.
NESTED_GOAL_FACTOR = 2.0


def synthesise_table(n_features: int, *, seed: int = 0) -> tuple[pd.DataFrame, list[str]]:
    """A default-preset-shaped table with UrbanSound8K's classes, folds and recordings.

    Returns
    -------
    table : pd.DataFrame [shape=(8732, 13 + n_features)]
    features : list of str
        The feature column names (the default preset's, then ``extra_<k>``).
    """
    rng = np.random.default_rng(seed)
    preset = feature_columns(FeatureParams())
    names = preset[:n_features] + [f"extra_{k + 1}" for k in range(n_features - len(preset))]
    latent = 24
    class_means = rng.normal(0.0, 0.7, (len(US8K_CLASSES), latent))
    projection = rng.normal(0.0, 1.0, (latent, n_features)) / np.sqrt(latent)
    scales = 10.0 ** rng.uniform(-2, 3, n_features)  # chroma ~0.01 ... centroid ~1000 Hz
    rows, blocks, fs_id = [], [], 10_000
    fold_sizes = np.zeros(10, dtype=int)
    for class_id, (label, n_clips) in enumerate(US8K_CLASSES.items()):
        left = n_clips
        while left > 0:
            size = int(min(left, rng.geometric(1 / 7)))
            fold = int(np.argmin(fold_sizes + rng.integers(0, 30, 10)))  # balanced folds
            fold_sizes[fold] += size
            offset = rng.normal(0.0, 0.8, latent)  # the recording's own sound
            z = class_means[class_id] + offset + rng.normal(0.0, 1.0, (size, latent))
            blocks.append(z @ projection + rng.normal(0.0, 0.6, (size, n_features)))
            for i in range(size):
                name = f"{fs_id}-{class_id}-0-{i}.wav"
                rows.append({
                    "path": f"audio/fold{fold + 1}/{name}", "label": label, "fold": fold + 1,
                    "group": str(fs_id), "slice_file_name": name, "fsID": str(fs_id),
                    "start": f"{i * 4.0:g}", "end": f"{i * 4.0 + 4.0:g}",
                    "salience": str(int(rng.integers(1, 3))), "classID": str(class_id),
                    "duration_s": 4.0, "orig_sample_rate": 44100, "orig_channels": 2,
                })
            fs_id += 1
            left -= size
    meta = pd.DataFrame(rows)
    meta["fold"] = meta["fold"].astype("Int64")
    values = np.vstack(blocks) * scales + rng.normal(0.0, 1.0, n_features) * scales
    return pd.concat([meta, pd.DataFrame(values, columns=names)], axis=1), names


def write_bench_table(out_dir: Path, n_features: int, *, seed: int = 0) -> Path:
    """Write features.parquet + features.schema.csv (+ features.json if the columns are real)."""
    table, names = synthesise_table(n_features, seed=seed)
    params = FeatureParams()
    paths = write_table(table, out_dir, ["parquet"])
    schema = build_schema(table, params, layout="urbansound8k")
    schema.loc[schema["column"].isin(names), "role"] = "feature"
    write_csv(schema, out_dir / "features.schema.csv")
    meta_path = out_dir / "features.json"
    if names == feature_columns(params):
        # Real preset columns: the bundle can be saved, as after `make features`.
        write_json({"params": params.to_dict(), "param_key": params.key(), "root": "synthetic",
                    "layout": "urbansound8k", "clips": {"total": len(table), "ok": len(table),
                                                        "failed": 0}}, meta_path)
    elif meta_path.exists():
        meta_path.unlink()
    return paths["parquet"]


def bench_tune(table: Path, out: Path, *, models: str, seed: int, folds: str | None = None) -> int:
    """Untuned then tuned ``train`` on ``table`` (official folds); accuracies, time factor, importance cost.

    ``folds`` (``"1,2"``) keeps only those folds' rows, for a quicker measurement.
    """
    if folds:
        import pandas as pd

        keep = {int(f) for f in folds.split(",")}
        df = pd.read_parquet(table) if table.suffix == ".parquet" else pd.read_csv(table)
        table = write_table(df[df["fold"].isin(keep)].reset_index(drop=True), out / "subset", ["parquet"])["parquet"]
    runs = {}
    for tune in (False, True):
        started = time.perf_counter()
        result = train(table, out / ("tuned" if tune else "untuned"),
                       TrainOptions(models=models, cv="folds", seed=seed, quiet=True, tune=tune),
                       log=lambda line: None, force=True)
        runs[tune] = (result, time.perf_counter() - started)
        print(f"{'tuned' if tune else 'untuned'} run: {runs[tune][1]:.0f} s wall; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    plain, tuned = runs[False][0], runs[True][0]
    started = time.perf_counter()
    nested = train(table, out / "nested", TrainOptions(models=models, cv="folds", seed=seed,
                                                       quiet=True, select="nested"),
                   log=lambda line: None, force=True)
    nested_seconds = time.perf_counter() - started
    board = nested.leaderboard.set_index("model")
    chosen = pd.Series(nested.selection["chosen"]).value_counts()
    print(f"--select nested: {nested_seconds:.0f} s wall = x{nested_seconds / runs[True][1]:.2f} of "
          f"--tune's (goal: at most x{NESTED_GOAL_FACTOR:.0f} -> "
          f"{'PASS' if nested_seconds <= NESTED_GOAL_FACTOR * runs[True][1] else 'FAIL'}); "
          f"the nested estimate {board.loc['nested', 'accuracy_mean']:.3f} ± "
          f"{board.loc['nested', 'accuracy_std']:.3f} against the best of "
          f"{len(nested.models)} {board.drop(index='nested')['accuracy_mean'].max():.3f}; chosen: "
          f"{', '.join(f'{m} x{n}' for m, n in chosen.items())}", flush=True)
    print()
    print(f"{'model':<8}{'accuracy':>10}{'tuned':>8}{'fit s':>8}{'tuned':>8}  chosen by the final search")
    for name in plain.results:
        a = plain.leaderboard.set_index("model").loc[name, "accuracy_mean"]
        b = tuned.leaderboard.set_index("model").loc[name, "accuracy_mean"]
        chosen = tuned.final_params if name == tuned.final_model else ""
        print(f"{name:<8}{a:>10.3f}{b:>8.3f}{plain.results[name].fit_seconds:>8.0f}"
              f"{tuned.results[name].fit_seconds:>8.0f}  {chosen or ''}")
    factor = runs[True][1] / runs[False][1]
    permuting = sum(plain.timings["importance_seconds"].values())
    fitting = sum(plain.timings["cv_fit_seconds"].values())
    print(f"importance: {permuting:.1f} s of permuted predictions summed over splits and models, "
          f"{100 * permuting / fitting:.0f}% of the {fitting:.0f} s of fitting (untuned)")
    verdict = "PASS" if factor <= TUNE_GOAL_FACTOR * 1.1 else "FAIL"
    print(f"bench_train --tune: {plain.table.n_rows} rows x {plain.table.n_features} features, "
          f"{len(plain.results)} models x {plain.protocol.n_splits} folds: untuned {runs[False][1]:.0f} s, "
          f"tuned {runs[True][1]:.0f} s wall -> x{factor:.1f} (goal about x{TUNE_GOAL_FACTOR:.0f}) -> {verdict}")
    return 0 if verdict == "PASS" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/bench/train"),
                        help="folder for the table and the run (default: %(default)s)")
    parser.add_argument("--features", type=int, default=len(feature_columns(FeatureParams())),
                        help="feature columns (default: %(default)s, exactly the default preset's "
                        "columns, so the model bundle is saved too)")
    parser.add_argument("--models", default="mlp,logreg,svm,rf,knn,hgb")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tune-on", type=Path, metavar="TABLE", default=None,
                        help="measure --tune on this table (with folds) instead: accuracy and wall "
                        "time untuned vs tuned")
    parser.add_argument("--folds", metavar="LIST", default=None,
                        help="with --tune-on: keep only these folds' rows (e.g. 1,2,3), to be quicker")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_features import BENCH, claim_bench

    if args.out.resolve().is_relative_to(BENCH.resolve()):
        claim_bench()
    if args.tune_on is not None:
        return bench_tune(args.tune_on, args.out / "tune", models=args.models, seed=args.seed,
                          folds=args.folds)

    t = time.perf_counter()
    table_path = write_bench_table(args.out / "features", args.features, seed=args.seed)
    print(f"synthetic table {table_path} written in {time.perf_counter() - t:.1f} s; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    started = time.perf_counter()
    result = train(table_path, args.out / "run", TrainOptions(models=args.models, seed=args.seed,
                                                              quiet=True), force=True)
    extra = 0.0
    if result.bundle_dir is None:
        # Synthetic columns cannot be bundled; time the refit anyway so the
        # total covers everything `train` does on a real table.
        t = time.perf_counter()
        pipe = result.options.pipeline(result.final_model)
        fit_params = ({"mlp__groups": result.table.groups} if result.final_model == "mlp" else {})
        pipe.fit(result.table.X, result.table.y, **fit_params)
        extra = time.perf_counter() - t
    total = time.perf_counter() - started + extra

    print()
    print(leaderboard_text(result))
    print()
    timings = result.timings
    print(f"{'model':<8}{'wall s':>8}{'fit s (sum over folds)':>24}{'predict s':>11}")
    for name, r in result.results.items():
        print(f"{name:<8}{timings['cv_wall_seconds'][name]:>8.1f}{r.fit_seconds:>24.1f}"
              f"{r.predict_seconds:>11.1f}")
    refit = timings.get("final_fit_seconds", extra)
    print(f"final refit of {result.final_model} on all rows: {refit:.1f} s; writing outputs: "
          f"{timings['write_seconds']:.1f} s")
    verdict = "PASS" if total < GOAL_SECONDS else "FAIL"
    print(f"bench_train: {result.table.n_rows} rows x {result.table.n_features} features, "
          f"{len(result.results)} models x {result.protocol.n_splits} folds: total wall time "
          f"{total:.0f} s (goal < {GOAL_SECONDS:.0f} s) -> {verdict}; load average now "
          f"{os.getloadavg()[0]:.1f}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())

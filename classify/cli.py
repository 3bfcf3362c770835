"""``python -m classify train|predict|eda|report``: the whole command line.

Every option of every subcommand is declared here; the modules that do the
work (:mod:`classify.training`, :mod:`classify.predict`,
:mod:`classify.pages`) expose plain functions and know nothing of argparse.
Only the chosen subcommand's options are built and its module imported, so
``predict`` does not pay for TensorFlow nor ``train`` for the pages.

Every error the packages raise on purpose (:class:`ClassifyError`,
:class:`features.errors.FeaturesError`) becomes one ``error: ...`` line on
stderr and the error's own exit status (see :data:`EXIT_CODES`); no traceback.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from features.cli import add_dataset_options, add_runner_options, run_options
from features.cli_types import int_at_least
from features.errors import FeaturesError
from features.io.storage import redact_text

from .errors import ClassifyError

PROG = "python -m classify"
EXIT_CODES = ("exit codes: 0 done, 2 usage error (an option, table, run folder or model that cannot "
              "be used), 1 runtime error (a model that cannot be fitted, a disk or cluster error), "
              "5 output folder in use by another run, 130 interrupted.")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    try:
        args = build_parser(command).parse_args(argv)
        return int(args.handler(args) or 0)
    except (ClassifyError, FeaturesError) as e:
        return _fail(str(e), e.exit_status)
    except OSError as e:
        # Disk full, permission denied, ...: the message names the file.
        return _fail(f"{type(e).__name__}: {e}", 1)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser, with the options of subcommand ``command``.

    The other subcommands get a bare parser (enough for the ``--help``
    listing), so building the parser imports only what ``command`` needs.
    """
    parser = argparse.ArgumentParser(
        prog=PROG, description="Honest, fold-aware classification of audio feature tables.",
        epilog=EXIT_CODES,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (text, add_options) in COMMANDS.items():
        p = sub.add_parser(name, help=text, description=text)
        if name == command:
            add_options(p)
    return parser


# -------------------------------------------------------------------- train


def _train_options(parser: argparse.ArgumentParser) -> None:
    from .models import DEFAULT_MLP_LAYERS
    from .registry import MODEL_NAMES, PATCH_MODELS
    from .splits import PROTOCOLS

    parser.add_argument("table", metavar="TABLE", help="features.csv or features.parquet")
    parser.add_argument(
        "--out", metavar="DIR",
        help="run directory (default: 'run' beside the table: data/output/NAME/run for "
        "data/output/NAME/features/features.parquet, /data/X/run for /data/X/table.csv); a "
        "folder holding anything but an earlier run is refused (see --force)",
    )
    parser.add_argument("--models", default=",".join(MODEL_NAMES), metavar="LIST",
                        help="comma-separated models to compare (default: %(default)s); add "
                        f"{', '.join(PATCH_MODELS)} for the CNN on log-mel patches, without and "
                        "with augmentation of its training clips (they need --patches and take "
                        "minutes)")
    parser.add_argument(
        "--patches", metavar="DIR", default=None,
        help="output folder of 'python -m features patches' for the cnn models (default: "
        "'patches' beside the table's folder, e.g. data/output/NAME/patches); all models are "
        "then trained on the clips that have both a table row and a patch (others: unmatched.csv)",
    )
    parser.add_argument("--cnn-epochs", type=int, default=None, metavar="N",
                        help="maximum epochs of cnn and cnn_aug (default: 30, with early stopping)")
    parser.add_argument("--cnn-stereo-split", action="store_true",
                        help="cnn_aug also trains on each channel of its stereo training clips "
                        "(channels.npy; 2.5x the training examples on the demo)")
    parser.add_argument(
        "--cv", default="auto", choices=PROTOCOLS,
        help="evaluation protocol: auto = the dataset's train/validation/test parts ('split' "
        "column: holdout), else the table's folds, else group k-fold on 'group', else "
        "stratified k-fold; random = leaky shuffled 80/20 hold-out (default: auto)",
    )
    parser.add_argument("--k", type=int, default=5,
                        help="splits of the group / stratified protocols (default: 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of splits and models (default: 0)")
    parser.add_argument("--mlp-layers", default=",".join(map(str, DEFAULT_MLP_LAYERS)),
                        metavar="LIST", help="MLP hidden layer sizes (default: %(default)s; "
                        "256,128,64 is the GTZAN tutorial's)")
    parser.add_argument("--class-weight", choices=["balanced"], default=None,
                        help="weigh classes inversely to their frequency (skewed classes)")
    parser.add_argument("--final", metavar="NAME",
                        help="model to refit on all rows and save (default: the best: by "
                        "validation accuracy under holdout, else by mean accuracy)")
    parser.add_argument("--select", choices=["best", "nested"], default="best",
                        help="'nested' also scores the procedure 'pick the best model, then fit "
                        "it': the pick is made inside every training part, on inner splits that "
                        "keep folds and groups whole, and the pick's score on the outer test part "
                        "is kept (the leaderboard row 'nested': the honest number to quote) "
                        "(default: %(default)s)")
    parser.add_argument("--keep-column", metavar="NAME", action="append", default=[],
                        dest="keep_columns",
                        help="keep this feature column although it looks like the label in "
                        "disguise (named like a class id, or mapping one-to-one onto the "
                        "classes); such columns are otherwise left out, with a warning "
                        "(repeatable)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="maximum MLP epochs (default: 200, with early stopping)")
    parser.add_argument("--jobs", type=int, default=0,
                        help="worker processes fitting splits in parallel (default: 0 = one "
                        "per core; the scores and predictions do not depend on it)")
    parser.add_argument("--tune", action="store_true",
                        help="choose each model's parameters by a small successive-halving search "
                        "inside every training part (inner splits keep folds/groups whole; the "
                        "test part never takes part); the final model is tuned on all rows. "
                        "Chosen parameters: 'params' in folds.csv, 'tuning' in run.json")
    parser.add_argument("--no-importance", dest="importance", action="store_false",
                        help="skip the grouped permutation importance of the feature families "
                        "(importance.csv, importance.png)")
    parser.add_argument("--quiet", action="store_true", help="no per-split progress lines")
    parser.add_argument("--force", action="store_true",
                        help="write into a non-empty --out folder that holds no training run "
                        "(its files are kept; one with a run's file names is refused)")
    parser.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    from .options import TrainOptions
    from .record import leaderboard_text
    from .training import train

    options = TrainOptions(
        models=args.models, cv=args.cv, k=args.k, seed=args.seed, mlp_layers=args.mlp_layers,
        class_weight=args.class_weight, final=args.final, epochs=args.epochs, quiet=args.quiet,
        jobs=args.jobs, tune=args.tune, importance=args.importance, cnn_epochs=args.cnn_epochs,
        cnn_stereo_split=args.cnn_stereo_split, select=args.select, keep_columns=args.keep_columns,
    )
    result = train(args.table, args.out, options, patches=args.patches, log=_say, force=args.force)
    print(flush=True)
    print(leaderboard_text(result), flush=True)
    return 0


# ------------------------------------------------------------------ predict


def _predict_options(parser: argparse.ArgumentParser) -> None:
    from .predict import DEFAULT_TOP

    parser.description = ("Predict the class of audio files with a model bundle "
                          "written by `python -m classify train`.")
    parser.add_argument("--model", required=True, metavar="BUNDLE",
                        help="model bundle directory (RUN/model)")
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="audio files or folders (searched recursively); with --out DIR, one "
                        "collection: a dataset folder or URL in any layout 'features extract' reads, "
                        "or any folder of audio files")
    parser.add_argument("--out", metavar="FILE.csv|DIR", default=None,
                        help="FILE.csv: also write the predictions of the files to this CSV file (an "
                        "existing file is refused unless --force). DIR: label the collection on the "
                        "extraction engine (workers or Dask, time limits, crash isolation, resume) and "
                        "write predictions.csv, .parquet, predictions.json and errors.csv there (the "
                        "folder rules of 'features extract')")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing --out file; with --out DIR, as features extract")
    parser.add_argument("--trained-on", metavar="DATASET", default=None,
                        help="refuse the model unless it was trained on this dataset (folder or "
                        "URL): what 'make predict DATASET=...' passes, so a model of another "
                        "dataset never labels the files")
    parser.add_argument("--top", type=int_at_least(1), default=DEFAULT_TOP, metavar="K",
                        help="how many ranked classes to show (default %(default)s)")
    parser.add_argument("--segments", action="store_true",
                        help="for a model trained on windows (features extract --segment): also "
                        "show the label of every window under its clip's, and write one row per "
                        "window to --out FILE.csv (path, segment, segment_start_s, segment_end_s, ...)")
    add_dataset_options(parser)
    add_runner_options(parser)
    parser.set_defaults(handler=_predict)


def _predict(args: argparse.Namespace) -> int:
    """Print one line per file and report skipped ones; 1 when no file could be read."""
    from features.table import write_csv

    from .bundle import check_trained_on, load_bundle
    from .errors import UsageError
    from .predict import format_line, predict_files, predict_segments

    if args.out and not str(args.out).lower().endswith(".csv"):
        return _predict_collection(args)
    if args.layout or args.manifest:
        raise UsageError("--layout and --manifest describe a collection: give --out DIR (a folder) "
                         "to label it on the extraction engine")
    if args.out and Path(args.out).exists() and not args.force:
        raise UsageError(f"--out {args.out} already exists; choose another file, or pass --force "
                         "to replace it")
    bundle = load_bundle(args.model)
    if args.trained_on is not None:
        check_trained_on(bundle, args.trained_on)
    root = bundle.dataset_root
    print(f"model: {bundle.path} ({bundle.model_name}, trained on {root or 'an unknown dataset'}); "
          f"classes: {', '.join(bundle.class_names)}", file=sys.stderr)
    windows = None
    if args.segments:
        predictions, windows, errors = predict_segments(bundle, args.paths, jobs=run_options(args).workers,
                                                        top=args.top)
    else:
        predictions, errors = predict_files(bundle, args.paths, jobs=run_options(args).workers, top=args.top)
    for error in errors:
        print(f"skipped {error.path}: {error.message}", file=sys.stderr)
    for _, row in predictions.iterrows():
        print(format_line(row))
        if windows is not None:
            for _, window in windows[windows["path"] == row["path"]].iterrows():
                print(format_line(window))
    if args.out:
        write_csv(predictions if windows is None else windows, args.out)
    if predictions.empty:
        print(f"error: none of the {len(errors)} path(s) could be read; "
              "see the messages above", file=sys.stderr)
        return 1
    if errors:
        print(f"predicted {len(predictions)} file(s), skipped {len(errors)}", file=sys.stderr)
    return 0


def _predict_collection(args: argparse.Namespace) -> int:
    """``predict ROOT --out DIR``: the collection on the engine; exit codes as features extract."""
    from features.errors import ExtractionInterrupted

    from .bundle import check_trained_on, load_bundle
    from .collection import predict_collection
    from .errors import UsageError

    if len(args.paths) != 1:
        raise UsageError(f"--out {args.out} (a folder) labels one collection; give one ROOT folder or URL, "
                         f"not {len(args.paths)} paths (or --out FILE.csv for a list of files)")
    if args.segments:
        raise UsageError("--segments writes one row per window to --out FILE.csv; a collection's "
                         "predictions.csv has one row per clip (with n_segments)")
    bundle = load_bundle(args.model)
    if args.trained_on is not None:
        check_trained_on(bundle, args.trained_on)
    _say(f"model: {bundle.path} ({bundle.model_name}); classes: {', '.join(bundle.class_names)}")
    layout = "manifest" if args.manifest is not None else args.layout
    try:
        result = predict_collection(args.model, args.paths[0], args.out, layout=layout, manifest=args.manifest,
                                    options=run_options(args), top=args.top)
    except ExtractionInterrupted as exc:
        print(redact_text(str(exc)), file=sys.stderr, flush=True)
        return 130
    for note in result.notes:
        print(redact_text(note), file=sys.stderr, flush=True)
    if result.n_reused:
        _say(f"resumed: {result.n_reused} of {result.n_total} clips taken from the checkpoint")
    _say(result.summary())
    return result.exit_code


# ---------------------------------------------------------------------- eda


def _eda_options(parser: argparse.ArgumentParser) -> None:
    from features.io.datasets import LAYOUTS

    from .pages.eda import EXAMPLES, INFO_SAMPLE

    parser.description = (
        "Write an exploratory HTML page for a dataset: clips per class, durations, source "
        "formats, example clips (waveform, spectrograms, audio players) and, when the "
        "features table exists, per-class feature distributions and a PCA."
    )
    parser.add_argument("dataset", metavar="DATASET", type=Path, help="dataset root folder")
    parser.add_argument("--features", metavar="DIR_OR_TABLE", type=Path, default=None,
                        help="features folder (features.parquet or features.csv inside) or table "
                             "file; optional: without it the page says how to make one")
    parser.add_argument("--out", metavar="DIR", type=Path, default=None,
                        help="output folder (default: data/output/NAME/eda, NAME as for "
                        "'features extract'); never inside the dataset")
    parser.add_argument("--examples", metavar="N", type=int_at_least(1), default=EXAMPLES,
                        help="example clips per class (default: %(default)s)")
    parser.add_argument("--layout", default=None, choices=LAYOUTS,
                        help="dataset layout (default: detected)")
    parser.add_argument("--manifest", metavar="CSV", type=Path, default=None,
                        help="manifest CSV for --layout manifest")
    parser.add_argument("--sample", metavar="N", type=int_at_least(1), default=INFO_SAMPLE,
                        help="clips whose headers are read for formats/durations "
                             "(default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed for the samples and examples (default: 0)")
    parser.add_argument("--force", action="store_true",
                        help="write into a non-empty --out folder that holds no page (its files "
                        "are kept); a folder inside the dataset is always refused")
    parser.set_defaults(handler=_eda)


def _eda(args: argparse.Namespace) -> int:
    from .pages import build_eda

    index = build_eda(args.dataset, features=args.features, out=args.out, examples=args.examples,
                      layout=args.layout, manifest=args.manifest, seed=args.seed,
                      info_sample=args.sample, force=args.force)
    print(f"EDA page written to {index}")
    return 0


# ------------------------------------------------------------------- report


def _report_options(parser: argparse.ArgumentParser) -> None:
    from .pages.report import N_WRONG

    parser.description = (
        "Write an HTML report of a training run: leaderboard, CV protocol, scores per split, "
        "extraction summary, confusion matrices, per-class scores and the most confidently "
        "wrong predictions with their audio."
    )
    parser.add_argument("run_dir", metavar="RUN", type=Path,
                        help="run folder written by 'classify train'")
    parser.add_argument("--out", metavar="DIR", type=Path, default=None,
                        help="output folder (default: RUN/report)")
    parser.add_argument("--models", metavar="NAMES", default=None,
                        help="comma-separated models to include (default: all in leaderboard.csv)")
    parser.add_argument("--n-wrong", metavar="N", type=int_at_least(0), default=N_WRONG,
                        help="confidently wrong predictions to show (default: %(default)s)")
    parser.add_argument("--audio-root", metavar="DIR", type=Path, default=None,
                        help="dataset root for the clips' audio (default: 'root' in features.json)")
    parser.add_argument("--force", action="store_true",
                        help="write into a non-empty --out folder that holds no page (its files "
                        "are kept); a folder inside the dataset is always refused")
    parser.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    from .pages import build_report

    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    index = build_report(args.run_dir, out=args.out, models=models, n_wrong=args.n_wrong,
                         audio_root=args.audio_root, force=args.force)
    print(f"Report written to {index}")
    return 0


# ------------------------------------------------------------------ helpers

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "train": ("cross-validate the Keras MLP and scikit-learn baselines on a features table",
              _train_options),
    "predict": ("predict the class of audio files with a trained model bundle", _predict_options),
    "eda": ("write an exploratory HTML page for a dataset", _eda_options),
    "report": ("write the HTML report of a training run", _report_options),
}


def _say(line: str) -> None:
    print(redact_text(line), flush=True)


def _fail(message: str, status: int) -> int:
    print(redact_text(f"error: {' '.join(message.split())}"), file=sys.stderr, flush=True)
    return status

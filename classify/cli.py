"""``python -m classify train|predict|eda|report``.

``train`` lives here; ``predict``, ``eda`` and ``report`` live in their own
modules, each exposing ``configure_parser(parser)`` and ``run(args)``. Only
the module of the chosen subcommand is imported, so ``train`` does not pay
for the others (nor they for TensorFlow).

Every error the packages raise on purpose (:class:`ClassifyError`,
:class:`features.errors.FeaturesError`) becomes one ``error: ...`` line on
stderr and exit status 2; no traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from features.errors import FeaturesError

from .errors import ClassifyError
from .models import DEFAULT_MLP_LAYERS, MODEL_NAMES
from .splits import PROTOCOLS

PROG = "python -m classify"
COMMANDS = {
    "train": "cross-validate the Keras MLP and scikit-learn baselines on a features table",
    "predict": "predict the class of audio files with a trained model bundle",
    "eda": "write an exploratory HTML page for a dataset",
    "report": "write the HTML report of a training run",
}
USAGE_EXIT = 2


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; ``command`` is the subcommand whose module to import.

    Other subcommands get an empty parser (enough for ``--help`` listings).
    """
    parser = argparse.ArgumentParser(
        prog=PROG, description="Honest, fold-aware classification of audio feature tables."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in COMMANDS.items():
        p = sub.add_parser(name, help=text, description=text)
        if name == "train":
            configure_train_parser(p)
        elif name == command:
            _configure_external(name, p)
    return parser


def configure_train_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``train`` options to ``parser``."""
    parser.add_argument("table", metavar="TABLE", help="features.csv or features.parquet")
    parser.add_argument(
        "--out", metavar="DIR",
        help="run directory (default: 'run' beside the table's folder, e.g. "
        "data/output/NAME/run for data/output/NAME/features/features.parquet)",
    )
    parser.add_argument("--models", default=",".join(MODEL_NAMES), metavar="LIST",
                        help="comma-separated models to compare (default: %(default)s)")
    parser.add_argument(
        "--cv", default="auto", choices=PROTOCOLS,
        help="evaluation protocol: auto = the table's folds, else group k-fold on 'group', "
        "else stratified k-fold; random = leaky shuffled 80/20 hold-out (default: auto)",
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
                        help="model to refit on all rows and save (default: best mean accuracy)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="maximum MLP epochs (default: 200, with early stopping)")
    parser.add_argument("--jobs", type=int, default=0,
                        help="worker processes fitting splits in parallel (default: 0 = one "
                        "per core; results do not depend on it)")
    parser.add_argument("--quiet", action="store_true", help="no per-split progress lines")
    parser.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    """Run ``train`` from parsed arguments; prints the leaderboard; returns 0."""
    from .training import TrainOptions, leaderboard_text, train

    options = TrainOptions(
        models=args.models, cv=args.cv, k=args.k, seed=args.seed, mlp_layers=args.mlp_layers,
        class_weight=args.class_weight, final=args.final, epochs=args.epochs, quiet=args.quiet,
        jobs=args.jobs,
    )
    result = train(args.table, args.out, options, log=_say)
    print(flush=True)
    print(leaderboard_text(result), flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    try:
        parser = build_parser(command if command in COMMANDS else None)
        args = parser.parse_args(argv)
        return int(args.handler(args) or 0)
    except (ClassifyError, FeaturesError) as e:
        return _fail(str(e), USAGE_EXIT)
    except OSError as e:
        # Disk full, permission denied, ...: the message names the file.
        return _fail(f"{type(e).__name__}: {e}", 1)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)


# ----------------------------------------------------------------- helpers


def _configure_external(name: str, parser: argparse.ArgumentParser) -> None:
    module = _load_command_module(name)
    if module is None:
        parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        parser.set_defaults(handler=lambda args: _fail(f"{name} is not available yet", USAGE_EXIT))
        return
    module.configure_parser(parser)
    parser.set_defaults(handler=module.run)


def _load_command_module(name: str) -> ModuleType | None:
    """``classify.<name>`` if it exists and has configure_parser/run, else None."""
    qualified = f"{__package__}.{name}"
    try:
        module = importlib.import_module(qualified)
    except ModuleNotFoundError as e:
        if e.name == qualified:
            return None
        raise
    if not (callable(getattr(module, "configure_parser", None))
            and callable(getattr(module, "run", None))):
        return None
    return module


def _say(line: str) -> None:
    print(line, flush=True)


def _fail(message: str, status: int) -> int:
    print(f"error: {' '.join(message.split())}", file=sys.stderr, flush=True)
    return status

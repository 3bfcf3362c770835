"""Command line: ``python -m features extract|demo-data``.

Exit codes: 0 outputs written; 2 usage error (bad option, no dataset);
3 with ``--strict`` when any clip failed; 4 no clip could be analysed;
5 the output folder is in use by another run; 130 interrupted (resumable);
1 other failures (e.g. the output folder is not writable, the cluster is lost).
Heavy modules are imported only when a command runs, so ``--help`` is fast.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .cli_types import int_at_least
from .engine.options import BACKENDS, DEFAULT_CLIP_TIMEOUT, RunOptions
from .errors import FeaturesError, UsageError
from .io.layouts import LAYOUTS, help_lines
from .params import SEGMENT_LAST, Preset

PROG = "python -m features"

_MAIN_HELP = f"""\
Turn a folder of labelled sound clips into a table with one row of audio
features per clip (MFCCs, chroma, spectral shape, loudness), ready for
scikit-learn or pandas.

examples:
  {PROG} demo-data data/demo --clips 200     # make a small synthetic dataset
  {PROG} extract data/demo                   # -> data/output/demo/features/
  {PROG} extract ~/GTZAN --preset gtzan       # the GTZAN tutorial's table

Run '{PROG} COMMAND --help' for the options of a command.
"""

_EXTRACT_HELP = f"""\
Compute one row of features per clip of the dataset in ROOT.

ROOT is a folder, or an fsspec URL (s3://bucket/prefix, gs://..., https://...)
that every worker reads directly. It can be laid out as (detected
automatically, or pick with --layout):
{help_lines()}

Written to --out:
  features.csv / features.parquet  the table: path, label, fold, group, other
                                   metadata, duration_s, orig_sample_rate,
                                   orig_channels, then the features
  features.schema.csv              what every column means, with units
  features.json                    parameters, library versions, counts, timing
  errors.csv                       one row per clip that could not be used
                                   (always written; only a header when none)
The files appear together: features.json, written last, holds the SHA-256
of every other file.

A clip that cannot be read never stops the run: it goes to errors.csv. So
does a clip that crashes its worker process twice (stage crash; the worker
is replaced and the other clips are kept) or that takes longer than
--clip-timeout (stage timeout). The summary counts failures by reason.
Stopped with Ctrl-C (or killed)? Run the same command again: finished clips
are kept in OUT/.checkpoint/ and only the rest is computed.

Bigger than one machine? Run the batches on a Dask cluster:
  --backend dask --scheduler tcp://HOST:8786   (dask scheduler / dask worker)
  --backend dask --scheduler local:4           (4 local worker processes)
In the CSV, text starting with = + - @ gets a leading ' so spreadsheets do
not run it as a formula (the Parquet file keeps the raw text).

exit codes: 0 table written, 2 usage error, 3 some clips failed (with --strict),
4 no clip could be analysed, 5 output folder in use by another run,
130 interrupted, 1 other error (e.g. the cluster was lost; run again to resume).

example:
  {PROG} extract data/demo --out data/output/demo/features --jobs 2
"""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line: ``error: ...``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


_positive_int = int_at_least(1)
_non_negative_int = int_at_least(0, " (all cores)")


def _seconds(allow_zero: bool):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
        if not (value >= 0 if allow_zero else value > 0) or value == float("inf"):
            bound = "0 or more" if allow_zero else "more than 0"
            raise argparse.ArgumentTypeError(f"{text!r} must be {bound} seconds")
        return value

    return parse


def _formats(text: str) -> tuple[str, ...]:
    from .table import check_formats

    try:
        return check_formats(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m features`` argument parser."""
    parser = _Parser(prog=PROG, description=_MAIN_HELP,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    _add_extract(commands)
    _add_patches(commands)
    _add_demo(commands)
    return parser


def _add_extract(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "extract", help="compute the feature table of a dataset folder",
        description=_EXTRACT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("root", metavar="ROOT", help="the dataset folder or URL (s3://, gs://, https:// with --manifest, file://)")
    p.add_argument("--out", metavar="DIR", type=Path,
                   help="output folder (default: data/output/NAME/features, NAME being ROOT's "
                        "folder name, plus a short hash of its path unless it sits in ./data/); "
                        "a folder holding anything but earlier features is refused (see --force), "
                        "and so is a folder inside ROOT")
    add_dataset_options(p)
    p.add_argument("--preset", choices=[p.value for p in Preset], default=Preset.DEFAULT.value,
                   help="feature set: 'default' = means and stds of 40 MFCCs, 12 chroma bins, "
                        "spectral centroid/bandwidth/roll-off, zero-crossing rate and RMS; "
                        "'gtzan' = the GTZAN tutorial's table (filename, 26 means, label); "
                        "'rich' = 211 frame-level descriptors (MFCCs with deltas, 64 log-mel bands, "
                        "contrast, flatness, flux, ...) x 10 statistics (mean, std, min, max, "
                        "percentiles, skew, kurtosis, slope) = 2,110 columns, for clips up to 10 "
                        "minutes (longer: --segment) (default: %(default)s)")
    p.add_argument("--sr", metavar="HZ", type=_positive_int, default=22050,
                   help="resample every clip to this rate before analysis (default: %(default)s)")
    p.add_argument("--offset", metavar="S", type=_seconds(True), default=0.0,
                   help="skip this many seconds at the start of every clip (default: 0)")
    p.add_argument("--duration", metavar="S", type=_seconds(False),
                   help="read at most this many seconds of every clip (default: all)")
    p.add_argument("--fixed-length", metavar="S", type=_seconds(False),
                   help="cut or pad (with silence) every clip to exactly this many seconds, "
                        "so all clips have equal length (default: keep their length)")
    p.add_argument("--segment", metavar="S", type=_seconds(False),
                   help="cut every clip into windows of S seconds, one row per window "
                        "(columns segment, segment_start_s, segment_end_s); a window's group "
                        "is its clip's (or the dataset's own group), so no split separates "
                        "the windows of one clip (default: one row per clip)")
    p.add_argument("--segment-hop", metavar="S", type=_seconds(False),
                   help="seconds from one window's start to the next (default: --segment, "
                        "windows side by side)")
    p.add_argument("--segment-last", choices=SEGMENT_LAST, default="drop",
                   help="a clip's last window when shorter than --segment: 'drop' it or "
                        "zero-'pad' it; a clip shorter than one window always keeps one "
                        "padded window (default: %(default)s)")
    add_runner_options(p)
    p.add_argument("--format", metavar="LIST", type=_formats, default=("csv", "parquet"),
                   dest="formats",
                   help="table file format(s): csv, parquet or csv,parquet (default: both); "
                        "a table of the other format left in DIR by an earlier run is removed")
    p.add_argument("--frames", action="store_true",
                   help="also write the frame-level values before summarising (one row per clip and "
                        "frame: path, label, fold, group, frame, time_s, one column per value) as "
                        "OUT/frames/part-*.parquet, part of the set (DuckDB: SELECT path, "
                        "avg(mfcc_1) FROM 'OUT/frames/*.parquet' GROUP BY path)")
    p.add_argument("--force", action="store_true",
                   help="compute everything again, even if --out already holds the features "
                        "of these parameters on this unchanged dataset (then the run only "
                        "checks that and ends); also write into a non-empty --out that holds "
                        "no features, beside its files (kept; one with our file names is refused)")
    p.set_defaults(func=_cmd_extract)


def add_dataset_options(p: argparse.ArgumentParser) -> None:
    """``--layout`` and ``--manifest``: how a dataset's clips are listed (also ``classify predict``'s)."""
    p.add_argument("--layout", metavar="NAME",
                   help=f"dataset layout, one of: {', '.join(LAYOUTS)} "
                        "(default: detect it)")
    p.add_argument("--manifest", metavar="FILE",
                   help="CSV listing the clips (columns path,label and optional fold,group,"
                        "split); implies --layout manifest")


_RUN = RunOptions()  # the defaults, defined once


def add_runner_options(p: argparse.ArgumentParser) -> None:
    """The :class:`RunOptions` flags but ``--force``, with its defaults (also ``classify predict``'s)."""
    p.add_argument("--jobs", metavar="N", type=_non_negative_int, default=_RUN.jobs,
                   help="worker processes of the local backend; 0 = one per CPU core "
                        "(default: %(default)s)")
    p.add_argument("--backend", choices=BACKENDS, default=_RUN.backend,
                   help="where batches run: 'local' worker processes, or a 'dask' cluster "
                        "(with --scheduler) (default: %(default)s)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="with --backend dask: tcp://HOST:PORT of a running Dask scheduler, "
                        "or local:N to start N worker processes on this machine")
    p.add_argument("--clip-timeout", metavar="S", type=_seconds(False), default=_RUN.clip_timeout,
                   help="a clip taking longer than S seconds plus 2 s per MB of file is "
                        f"stopped and reported (stage timeout) (default: {DEFAULT_CLIP_TIMEOUT:g})")
    p.add_argument("--strict", action="store_true",
                   help="exit with code 3 if any clip failed (the outputs are still written)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar (it is also hidden when output is not a terminal)")
    p.add_argument("--batch-size", metavar="N", type=_positive_int, default=_RUN.batch_size,
                   help="advanced: clips per worker task (default: chosen from the clip "
                        "count and --jobs; smaller = finer-grained resume)")


def _check_dataset_args(args: argparse.Namespace) -> tuple[str, str | None]:
    """(root, layout) after checking ROOT, --layout, --manifest and the backend options."""
    from .io.storage import is_url

    root = args.root
    if not is_url(root) and not Path(root).is_dir():
        raise UsageError(f"ROOT {root!r} is not a folder; give the dataset folder")
    if (args.manifest is not None and not is_url(args.manifest)
            and not Path(args.manifest).is_file()):
        raise UsageError(f"--manifest {args.manifest!r} does not exist")
    layout = args.layout
    if layout is not None and layout not in LAYOUTS:
        raise UsageError(f"--layout {layout!r} is not one of: {', '.join(LAYOUTS)}")
    if args.manifest is not None and layout not in (None, "manifest"):
        raise UsageError(f"--manifest only works with --layout manifest, not {layout!r}")
    if args.manifest is not None:
        layout = "manifest"
    return root, layout


def run_options(args: argparse.Namespace) -> RunOptions:
    """The runner options given on the command line (checked by RunOptions)."""
    return RunOptions(**{name: getattr(args, name) for name in RunOptions.fields()})


_PATCHES_HELP = f"""\
Write one log-mel spectrogram patch per clip of the dataset in ROOT, the
input of spectrogram CNNs (classify train --models cnn). Every clip is made
mono, resampled, cut or zero-padded to --duration seconds, then turned into
librosa's melspectrogram in dB (power_to_db, top_db 80).

It runs like 'extract': same layouts and ROOT URLs, parallel on local
processes or Dask, resumable, crash- and timeout-isolated, errors.csv.

Written to --out (default data/output/NAME/patches):
  patches.npy                 float32 [clips, n_mels, frames], memory-mappable
  patches.csv / .parquet      row i describes patch i: path, label, fold, group,
                              [split], metadata, duration_s, orig_sample_rate,
                              orig_channels, stereo_row
  channels.npy                float32 [stereo clips, 2, n_mels, frames]: each
                              channel of stereo clips (stereo-split augmentation)
  noise.npy                   patches of the dataset's background noise, if any
  patches.json                parameters, key, counts, SHA-256 of every file
  errors.csv

example:
  {PROG} patches data/demo --jobs 2
"""


def _add_patches(commands: argparse._SubParsersAction) -> None:
    from .patches import DEFAULT_SECONDS

    p = commands.add_parser(
        "patches", help="write one log-mel patch per clip (input of spectrogram CNNs)",
        description=_PATCHES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("root", metavar="ROOT", help="the dataset folder or URL")
    p.add_argument("--out", metavar="DIR", type=Path,
                   help="output folder (default: data/output/NAME/patches, as for extract); a "
                        "folder holding anything but earlier patches is refused (see --force)")
    add_dataset_options(p)
    defaults = ", ".join(f"{k} {v:g} s" for k, v in DEFAULT_SECONDS.items())
    p.add_argument("--duration", metavar="S", type=_seconds(False),
                   help=f"seconds per patch (default: the dataset's clip length: {defaults}; "
                        "else the median length of its clips)")
    p.add_argument("--sr", metavar="HZ", type=_positive_int, default=22050,
                   help="sample rate before analysis (default: %(default)s)")
    p.add_argument("--n-mels", metavar="N", type=_positive_int, default=64,
                   help="mel bands (default: %(default)s)")
    p.add_argument("--n-fft", metavar="N", type=_positive_int, default=1024,
                   help="STFT frame length in samples (default: %(default)s)")
    p.add_argument("--hop-length", metavar="N", type=_positive_int, default=512,
                   help="STFT hop in samples (default: %(default)s)")
    p.add_argument("--offset", metavar="S", type=_seconds(True), default=0.0,
                   help="skip this many seconds at the start of every clip (default: 0)")
    p.add_argument("--no-stereo", action="store_true",
                   help="do not keep the channels of stereo clips (no stereo-split augmentation)")
    add_runner_options(p)
    p.add_argument("--force", action="store_true",
                   help="compute the patches again, even if --out already holds those of these "
                        "parameters on this unchanged dataset (then the run only checks that "
                        "and ends); also write into a non-empty --out that holds no patches, "
                        "beside its files (kept)")
    p.set_defaults(func=_cmd_patches)


def _cmd_patches(args: argparse.Namespace) -> int:
    from .patches import extract_patches

    root, layout = _check_dataset_args(args)
    params = {"sr": args.sr, "n_mels": args.n_mels, "n_fft": args.n_fft,
              "hop_length": args.hop_length, "offset": args.offset, "stereo": not args.no_stereo}
    if args.duration is not None:
        params["duration"] = args.duration
    out = args.out or default_out(root, "patches")
    options = run_options(args)
    return _finish(lambda: extract_patches(root, out, params, layout=layout,
                                           manifest=args.manifest, options=options))


def _finish(run) -> int:
    """Run an extraction; print its notes and summary; return its exit code."""
    from .errors import ExtractionInterrupted

    try:
        result = run()
    except ExtractionInterrupted as exc:
        _say(str(exc), err=True)
        return 130
    for note in result.notes:
        _say(note, err=True)
    if result.n_reused and not getattr(result, "up_to_date", False):
        _say(f"resumed: {result.n_reused} of {result.n_total} clips taken from the checkpoint")
    _say(result.summary())
    return result.exit_code


def _say(line: str, *, err: bool = False) -> None:
    """Print a line for the user; no URL in it keeps its password or token."""
    from .io.storage import redact_text

    print(redact_text(line), file=sys.stderr if err else sys.stdout)


def _add_demo(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "demo-data", help="write a synthetic UrbanSound8K-style dataset to try the pipeline",
        description=(
            "Write a small synthetic dataset in the UrbanSound8K layout (10 classes, 10 folds, "
            "short generated sounds) to DIR, so the pipeline can be tried without a download.\n\n"
            f"example:\n  {PROG} demo-data data/demo --clips 200"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dir", metavar="DIR", help="folder to write the dataset to")
    p.add_argument("--clips", metavar="N", type=_positive_int, default=1000,
                   help="number of clips (default: %(default)s)")
    p.add_argument("--seed", metavar="S", type=int, default=0,
                   help="random seed; the same seed gives the same files (default: %(default)s)")
    p.set_defaults(func=_cmd_demo)


def default_out(root: str | Path, kind: str = "features") -> Path:
    """``data/output/<dataset name>/<kind>`` (relative to the current folder; see :mod:`features.io.naming`)."""
    from .io.naming import default_output

    return default_output(root, kind)


def _cmd_extract(args: argparse.Namespace) -> int:
    from .params import FeatureParams

    root, layout = _check_dataset_args(args)
    if args.segment is None and (args.segment_hop is not None or args.segment_last != "drop"):
        raise UsageError("--segment-hop and --segment-last need --segment SECONDS")
    params = FeatureParams(preset=args.preset, sr=args.sr, offset=args.offset,
                           duration=args.duration, fixed_length=args.fixed_length,
                           segment=args.segment, segment_hop=args.segment_hop,
                           segment_last=args.segment_last)
    from .extract import extract_dataset

    options = run_options(args)
    return _finish(lambda: extract_dataset(root, args.out or default_out(root), params,
                                           layout=layout, manifest=args.manifest,
                                           formats=args.formats, frames=args.frames, options=options))


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import make_demo_dataset

    root = make_demo_dataset(args.dir, n_clips=args.clips, seed=args.seed)
    print(f"demo dataset: {args.clips} clips in {root}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        _say("interrupted", err=True)
        return 130
    except FeaturesError as exc:
        _say(f"error: {exc}", err=True)
        return exc.exit_status
    except OSError as exc:
        _say(f"error: {exc}", err=True)
        return 1

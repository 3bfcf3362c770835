"""Log-mel patches: one fixed-shape spectrogram per clip, for spectrogram CNNs.

:func:`extract_patches` runs on the same machinery as the feature table
(discovery, the fault-isolated runner on local processes or Dask,
checkpoint and resume, timeouts, ``errors.csv``, a locked output folder
whose files appear together) and writes, in ``OUT``:

- ``patches.npy``: float32 [shape=(n_clips, n_mels, n_frames)], one patch
  per clip, memory-mappable (``np.load(..., mmap_mode="r")``);
- ``patches.csv`` / ``patches.parquet``: the index, row ``i`` describing
  patch ``i``, with the feature table's identifying and metadata columns,
  ``duration_s, orig_sample_rate, orig_channels`` and ``stereo_row``;
- ``channels.npy``: float32 [shape=(n_stereo, 2, n_mels, n_frames)], the
  patches of each channel of the stereo clips (``stereo_row`` points into
  it, -1 for other clips), for the stereo-split augmentation;
- ``noise.npy``: float32 [shape=(n_noise, n_mels, n_frames)], patches cut
  from the dataset's own background-noise recordings (Speech Commands'
  ``_background_noise_``), for noise augmentation; empty when it has none;
- ``patches.json``: the :class:`~features.params.PatchParams`, their key,
  counts, and the SHA-256 of every other file (written last);
- ``errors.csv``.

A patch is the clip, mono, resampled, cut or zero-padded to ``duration``
seconds, then ``librosa.power_to_db(librosa.feature.melspectrogram(...),
top_db=80)``; :func:`features.analysers.patch_row` computes it for one file.
"""
from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import table as T
from .analysers import PatchAnalyser
from .compute import log_mel
from .engine.options import RunOptions
from .engine.outputs import seal, staging_folder, verify_outputs
from .engine.runner import run_dataset, run_files
from .errors import OutputMismatchError, UsageError
from .io.audio import load_audio
from .io.datasets import discover
from .io.records import ErrorRecord
from .io.storage import tree_for
from .params import FeatureParams, PatchParams
from .runs import (
    claimed,
    dataset_key,
    describe_run,
    executing,
    exit_code,
    failure_lines,
    same_run,
    saved_errors,
)

__all__ = ["DEFAULT_SECONDS", "PATCHES_JSON", "PATCH_FILES", "default_duration", "extract_patches",
           "patch_files", "read_patches"]

#: Patch length by dataset layout: the clips' own length where it is fixed.
DEFAULT_SECONDS = {"urbansound8k": 4.0, "speechcommands": 1.0, "gtzan": 30.0}
# How many clips' headers are read to choose a length for other layouts.
_SAMPLE_FOR_DURATION = 200
INDEX_EXTRA = ("stereo_row",)


def default_duration(dataset: Any) -> float:
    """Patch length for a dataset: its layout's clip length, else the median of its clips.

    The median is taken over the headers of up to 200 clips spread over the
    dataset, rounded to 0.1 s. Headers are read through the dataset's own
    storage (a local folder, or a URL such as ``s3://``), as the clips are.

    Raises
    ------
    UsageError
        No header could be read; the message says why (the first reason).
    """
    if dataset.layout in DEFAULT_SECONDS:
        return DEFAULT_SECONDS[dataset.layout]
    import soundfile as sf

    tree = dataset.tree or tree_for(dataset.root)
    paths = dataset.clips["path"].tolist()
    step = max(1, len(paths) // _SAMPLE_FOR_DURATION)
    seconds, failures = [], []
    for rel in paths[::step][:_SAMPLE_FOR_DURATION]:
        try:
            with tree.open(rel) as f:
                info = sf.info(f)
        except (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError) as exc:
            failures.append(f"{rel}: {type(exc).__name__}: {exc}")
            continue
        if info.samplerate > 0 and info.frames > 0:
            seconds.append(info.frames / info.samplerate)
    if not seconds:
        why = f" (of {len(failures)} read, the first said {failures[0]})" if failures else ""
        raise UsageError(f"cannot tell the clips' length to choose a patch duration: no clip "
                         f"header could be read{why}; give one with --duration SECONDS (make: "
                         f"DURATION=SECONDS)")
    return max(0.1, round(statistics.median(seconds), 1))


@dataclasses.dataclass(frozen=True)
class PatchResult:
    """What :func:`extract_patches` wrote and how it went."""

    out: Path
    params: PatchParams
    n_total: int
    n_ok: int
    n_failed: int
    n_reused: int
    n_stereo: int
    n_noise: int
    errors: list[Any]
    notes: list[str]
    strict: bool = False

    @property
    def exit_code(self) -> int:
        return exit_code(self.n_ok, self.n_total, self.n_failed, self.strict)

    def summary(self) -> str:
        shape = "x".join(map(str, self.params.shape))
        lines = [(f"{self.n_ok} patches of {shape} ({self.params.duration:g} s), "
                 f"{self.n_failed} failed; {self.n_stereo} stereo clips kept per channel, "
                 f"{self.n_noise} noise patches; in {self.out}")]
        lines += [f"  {line}" for line in failure_lines(self.errors)]
        if self.n_ok == 0 and self.n_total > 0:
            lines.append("no clip could be analysed: fix the cause above, then run again")
        return "\n".join(lines)


def extract_patches(
    root: str | os.PathLike,
    out: str | os.PathLike,
    params: PatchParams | dict[str, Any] | None = None,
    *,
    layout: str | None = None,
    manifest: str | os.PathLike | None = None,
    options: RunOptions | None = None,
    **run: Any,
) -> PatchResult:
    """Write one log-mel patch per clip of a dataset (see the module docstring).

    Parameters
    ----------
    root, out, layout, manifest, options, **run
        As :func:`features.extract.extract_dataset`: with ``force`` False,
        patches already in ``out`` from these parameters and this unchanged
        dataset are kept (checked against ``patches.json``) and nothing is
        computed.
    params : PatchParams or dict, optional
        The patch parameters; a dict (or None) without ``duration`` gets
        the dataset's default length (:func:`default_duration`).

    Returns
    -------
    PatchResult
    """
    start = time.perf_counter()
    options = options or RunOptions(**run)
    dataset = discover(root, layout=layout, manifest=manifest)
    if not isinstance(params, PatchParams):
        given = dict(params or {})
        given.setdefault("duration", default_duration(dataset))
        params = PatchParams(**given)
    out = Path(out)
    analyser = PatchAnalyser(params)
    with (executing(analyser, options) as executor,
          claimed(out, PATCHES_JSON, [*PATCH_FILES, PATCHES_JSON], options, dataset,
                  "features patches") as (previous, notes)):
        stamps = dataset.stamps()
        key = dataset_key(dataset, stamps, [str(n) for n in dataset.notes.get("background_noise", [])])
        current = None if options.force else _up_to_date(out, params, key, options.strict, notes)
        if current is not None:
            return current
        checkpoint, n_items, n_reused = run_dataset(dataset, out, analyser, executor,
                                                    kind="patches", options=options, stamps=stamps)
        clip_errors = [ErrorRecord(*fields) for _, fields in checkpoint.errors()]
        noise, noise_errors = _noise_patches(dataset, params)
        errors = [*dataset.errors, *clip_errors, *noise_errors]
        meta = {
            "params": params.to_dict(),
            "param_key": params.key(),
            "dataset_key": key,
            "shape": list(params.shape),
            **describe_run(dataset, executor, options, n_items=n_items, n_reused=n_reused,
                           n_clip_errors=len(clip_errors), errors=errors, start=start),
            "noise_sources": dataset.notes.get("background_noise", []),
        }
        n_stereo = _write(out, dataset, checkpoint, params, noise, errors, meta, previous)
        checkpoint.remove()
    return PatchResult(
        out=out, params=params, n_total=meta["clips"]["total"], n_ok=meta["clips"]["ok"],
        n_failed=len(errors), n_reused=n_reused, n_stereo=n_stereo, n_noise=len(noise),
        errors=errors, notes=[*notes, *(f"note: {n}" for n in meta["dataset_notes"]),
                                *(f"warning: {w}" for w in meta["warnings"])],
        strict=options.strict,
    )


def _up_to_date(out: Path, params: PatchParams, key: str, strict: bool,
                notes: list[str]) -> PatchResult | None:
    """The result of the run that already wrote ``out``, if it is this very run."""
    try:
        meta = verify_outputs(out, metadata=PATCHES_JSON)
    except OutputMismatchError:
        return None
    if not same_run(meta, params.key(), key):
        return None
    clips = meta["clips"]
    return PatchResult(
        out=out, params=params, n_total=clips["total"], n_ok=clips["ok"], n_failed=clips["failed"],
        n_reused=clips["total"], n_stereo=int(meta.get("stereo_rows", 0)),
        n_noise=int(meta.get("noise_rows", 0)), errors=saved_errors(out), strict=strict,
        notes=[*notes, (f"up to date: {out} already holds these patches of this dataset "
                        "(--force computes them again)")])


def _noise_patches(dataset: Any, params: PatchParams) -> tuple[np.ndarray, list[Any]]:
    """Patches cut side by side from the dataset's background-noise recordings."""
    patches, errors = [], []
    length = round(params.duration * params.sr)
    for rel in dataset.notes.get("background_noise", []):
        try:
            y, _ = load_audio(dataset.location(rel), FeatureParams(sr=params.sr))
        except Exception as exc:  # noqa: BLE001 - a bad noise file is reported, not fatal
            errors.append(ErrorRecord.from_exception(exc, path=rel, stage="load"))
            continue
        for start in range(0, y.size - length + 1, length):
            patches.append(log_mel(y[start:start + length], sr=params.sr, n_fft=params.n_fft,
                                   hop_length=params.hop_length, n_mels=params.n_mels,
                                   top_db=params.top_db))
    shape = (len(patches), *params.shape)
    return (np.stack(patches) if patches else np.empty(shape, np.float32)), errors


def _write(out: Path, dataset: Any, checkpoint: Any, params: PatchParams, noise: np.ndarray,
           errors: list[Any], meta: dict[str, Any], previous: list[str]) -> int:
    """Write the arrays and the index into a staging folder, then move them in as a set."""
    n_mels, n_frames = params.shape
    size = n_mels * n_frames
    clips = T.typed_metadata(dataset.clips)
    rows, stereo = _row_facts(checkpoint)
    stereo &= params.stereo
    with staging_folder(out) as staging:
        patches = np.lib.format.open_memmap(staging / "patches.npy", mode="w+", dtype=np.float32,
                                            shape=(rows, n_mels, n_frames))
        channels = np.lib.format.open_memmap(staging / "channels.npy", mode="w+",
                                             dtype=np.float32,
                                             shape=(int(stereo.sum()), 2, n_mels, n_frames))
        np.save(staging / "noise.npy", noise.astype(np.float32))
        index_parts = []
        at = st = 0
        for batch in checkpoint.iter_rows(CHUNK_ROWS):
            k = len(batch.indices)
            values = np.asarray(batch.features, dtype=np.float32)
            patches[at:at + k] = values[:, :size].reshape(k, n_mels, n_frames)
            is_stereo = batch.orig_channels >= 2 if params.stereo else np.zeros(k, bool)
            stereo_row = np.full(k, -1, dtype=np.int64)
            n_st = int(is_stereo.sum())
            stereo_row[is_stereo] = np.arange(st, st + n_st)
            if n_st:
                channels[st:st + n_st] = values[is_stereo, size:].reshape(n_st, 2, n_mels,
                                                                          n_frames)
            audio = pd.DataFrame({c: getattr(batch, c) for c in T.AUDIO_COLUMNS})
            part = T.build_table(clips.iloc[batch.indices], audio, np.empty((k, 0)), [])
            part["stereo_row"] = stereo_row
            index_parts.append(part)
            at, st = at + k, st + n_st
        patches.flush()
        channels.flush()
        del patches, channels
        empty = T.build_table(clips.iloc[:0], T.empty_audio(), np.empty((0, 0)), [])
        empty["stereo_row"] = np.empty(0, np.int64)
        T.write_tables(staging, iter(index_parts), empty, clips, ("csv", "parquet"), stem="patches")
        T.write_csv(T.errors_frame(errors), staging / "errors.csv")
        seal(out, staging, PATCHES_JSON,
             {**meta, "rows": rows, "stereo_rows": int(stereo.sum()), "noise_rows": len(noise)},
             names=list(PATCH_FILES), previous=previous)
    return int(stereo.sum())


PATCHES_JSON = "patches.json"
#: Patches a batch of the index is written in (rows per Parquet row group).
CHUNK_ROWS = 10_000
#: The files of a patch output set besides patches.json, in the order they are moved in.
PATCH_FILES = ("patches.npy", "channels.npy", "noise.npy", "patches.csv", "patches.parquet",
               "errors.csv")


def _row_facts(checkpoint: Any) -> tuple[int, np.ndarray]:
    """(rows, stereo flag per row in order), read without the patches themselves."""
    channels = []
    for saved in sorted(checkpoint.saved(), key=lambda s: int(s.indices[0])):
        with np.load(saved.path, allow_pickle=False) as z:
            channels.append((z["indices"], z["orig_channels"]))
    if not channels:
        return 0, np.zeros(0, bool)
    indices = np.concatenate([i for i, _ in channels])
    counts = np.concatenate([c for _, c in channels])
    order = np.argsort(indices, kind="stable")
    return len(indices), counts[order] >= 2


def patch_files(paths: Iterable[str | os.PathLike], params: PatchParams, *,
                jobs: int | None = 1) -> tuple[np.ndarray, list[str], list[Any]]:
    """Patches of loose audio files (for predicting with a CNN), each in a worker process.

    Returns
    -------
    patches : np.ndarray [shape=(n_ok, n_mels, n_frames), dtype=float32]
    paths : list of str
        The files the patches belong to, in input order.
    errors : list of ErrorRecord
    """
    plain = dataclasses.replace(params, stereo=False)
    shown = [str(p) for p in paths]
    n_mels, n_frames = plain.shape
    parts, failed = run_files(shown, PatchAnalyser(plain), jobs=RunOptions(jobs=jobs or 0).workers)
    errors = [ErrorRecord(*fields) for fields in failed]
    if not parts:
        return np.empty((0, n_mels, n_frames), np.float32), [], errors
    values = np.vstack([p.features for p in parts]).astype(np.float32)
    indices = np.concatenate([p.indices for p in parts])
    return values.reshape(-1, n_mels, n_frames), [shown[i] for i in indices], errors


def read_patches(folder: str | os.PathLike) -> dict[str, Any]:
    """Open an output folder of :func:`extract_patches` after checking it is one whole set.

    Returns
    -------
    dict
        ``params`` (PatchParams), ``meta`` (patches.json), ``index``
        (DataFrame), ``patches``, ``channels``, ``noise`` (read-only
        memory maps).
    """
    folder = Path(folder)
    meta = verify_outputs(folder, metadata=PATCHES_JSON)
    return {
        "params": PatchParams.from_dict(meta["params"]),
        "meta": meta,
        "index": pd.read_parquet(folder / "patches.parquet"),
        "patches": np.load(folder / "patches.npy", mmap_mode="r"),
        "channels": np.load(folder / "channels.npy", mmap_mode="r"),
        "noise": np.load(folder / "noise.npy", mmap_mode="r"),
    }


def describe(params: PatchParams) -> str:
    """One line: what a patch is."""
    return (f"{params.duration:g} s at {params.sr} Hz, {params.n_mels} mel bands x "
            f"{params.shape[1]} frames (n_fft {params.n_fft}, hop {params.hop_length}), dB "
            f"with top_db {params.top_db}")

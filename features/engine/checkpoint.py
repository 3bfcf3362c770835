"""Finished batches on disk: what makes a run resumable and its memory flat.

Every finished batch is saved at once as a small ``.npz`` file under
``OUT/.checkpoint/<param key>-<clips key>/``; the driver keeps only its clip
indices. Clips that crashed or hung their worker are saved as error rows
too, so a resumed run never runs them again. The folder name joins the
parameter key and a hash of the clip list (paths, sizes, change stamps), so
changed parameters or a changed dataset never reuse stale numbers. The
final table is streamed from these files (:meth:`Checkpoint.iter_rows`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_path
from .work import BatchResult

__all__ = ["CHECKPOINT_DIR", "Checkpoint", "clips_key"]

CHECKPOINT_DIR = ".checkpoint"


def clips_key(paths: Sequence[str], stamps: Sequence[tuple[int, str]]) -> str:
    """Hash of the clip list and each file's size and change stamp."""
    h = hashlib.sha256()
    for rel, (size, stamp) in zip(paths, stamps, strict=True):
        h.update(f"{rel}\t{size}:{stamp}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class _Saved:
    path: Path
    indices: np.ndarray  # every clip index in the file, sorted


class Checkpoint:
    """The finished batches of one run.

    Parameters
    ----------
    out : Path
        Output folder.
    param_key, clips_key : str
        Key of the feature parameters and of the clip list.
    n_features : int
        Width of a feature row (a saved file of another width is stale).
    """

    def __init__(self, out: Path, param_key: str, clips_key: str, n_features: int) -> None:
        self.base = out / CHECKPOINT_DIR
        self.dir = self.base / f"{param_key}-{clips_key}"
        self.n_features = n_features
        self._saved: list[_Saved] = []

    def open(self, n_total: int) -> int:
        """Create the folder (dropping checkpoints of other runs) and index what it holds.

        Returns the number of clips already finished.
        """
        if self.base.is_dir():
            for stale in self.base.iterdir():
                if stale != self.dir:
                    _remove(stale)
        self.dir.mkdir(parents=True, exist_ok=True)
        seen: set[int] = set()
        for path in sorted(self.dir.glob("batch-*.npz")):
            try:
                indices, width = _read_index(path)
            except (OSError, ValueError, KeyError, TypeError):
                _remove(path)  # cannot happen with atomic writes, but recomputing is safe
                continue
            listed = indices.tolist()
            if (width != self.n_features or not all(0 <= i < n_total for i in listed)
                    or not seen.isdisjoint(listed)):
                _remove(path)
                continue
            seen.update(listed)
            self._saved.append(_Saved(path, np.sort(indices)))
        return len(seen)

    def saved(self) -> list[_Saved]:
        """The saved batch files and their clip indices."""
        return list(self._saved)

    def n_on_disk(self) -> int:
        """Clips (good or failed) in the batch files on disk: what a resumed run will reuse.

        Read from the file names, so it also counts a batch whose file was
        renamed into place just before an interrupt, before :meth:`save`
        returned.
        """
        return sum(int(path.stem.rsplit("-", 1)[1]) for path in self.dir.glob("batch-*.npz"))

    def finished(self) -> set[int]:
        """Clip indices already saved."""
        return {int(i) for s in self._saved for i in s.indices}

    def save(self, batch: BatchResult) -> None:
        """Save one finished batch atomically."""
        if batch.n_clips == 0:
            return
        every = np.unique(np.array(batch.all_indices(), dtype=np.int64))
        target = self.dir / f"batch-{every[0]:09d}-{every[-1]:09d}-{every.size}.npz"
        with atomic_path(target) as tmp, open(tmp, "wb") as f:
            np.savez(
                f,
                indices=batch.indices,
                features=batch.features,
                duration_s=batch.duration_s,
                orig_sample_rate=batch.orig_sample_rate,
                orig_channels=batch.orig_channels,
                segment=batch.segment,
                segment_start_s=batch.segment_start_s,
                segment_end_s=batch.segment_end_s,
                error_indices=np.array([i for i, _ in batch.errors], dtype=np.int64),
                errors_json=np.array(json.dumps([list(e) for _, e in batch.errors])),
            )
        self._saved.append(_Saved(target, every))

    def errors(self) -> list[tuple[int, tuple]]:
        """Every saved error row, as ``(index, fields)``, in index order."""
        rows = []
        for saved in self._saved:
            with np.load(saved.path, allow_pickle=False) as z:
                fields = json.loads(str(z["errors_json"]))
                rows.extend(zip(z["error_indices"].tolist(), map(tuple, fields), strict=True))
        return sorted(rows, key=lambda r: r[0])

    def iter_rows(self, chunk: int) -> Iterator[BatchResult]:
        """The good clips' rows in index order, ``chunk`` clip indices at a time.

        Only the files that hold indices of the current chunk are read, so
        memory stays at a chunk's worth whatever the run's size.
        """
        if not self._saved:
            return
        last = max(int(s.indices[-1]) for s in self._saved)
        for lo in range(0, last + 1, chunk):
            hi = lo + chunk
            parts = [_read_rows(s.path, lo, hi) for s in self._saved
                     if s.indices[0] < hi and s.indices[-1] >= lo]
            parts = [p for p in parts if len(p.indices)]
            if parts:
                yield _sorted_concat(parts, self.n_features)

    def remove(self) -> None:
        """Delete the checkpoint (after the final outputs are in place)."""
        _remove(self.dir)
        with contextlib.suppress(OSError):
            self.base.rmdir()


def _read_index(path: Path) -> tuple[np.ndarray, int]:
    with np.load(path, allow_pickle=False) as z:
        indices = np.unique(np.concatenate([z["indices"], z["error_indices"]]).astype(np.int64))
        features = z["features"]
        if features.ndim != 2 or features.shape[0] != len(z["indices"]):
            raise ValueError(f"{path}: malformed batch file")
        json.loads(str(z["errors_json"]))
        return indices, features.shape[1]


def _read_rows(path: Path, lo: int, hi: int) -> BatchResult:
    with np.load(path, allow_pickle=False) as z:
        indices = z["indices"].astype(np.int64)
        keep = (indices >= lo) & (indices < hi)
        windowed = "segment" in z.files and z["segment"].size == indices.size > 0
        return BatchResult(
            indices=indices[keep],
            features=z["features"][keep],
            duration_s=z["duration_s"].astype(np.float64)[keep],
            orig_sample_rate=z["orig_sample_rate"].astype(np.int64)[keep],
            orig_channels=z["orig_channels"].astype(np.int64)[keep],
            errors=[],
            segment=z["segment"].astype(np.int64)[keep] if windowed else np.empty(0, np.int64),
            segment_start_s=z["segment_start_s"][keep] if windowed else np.empty(0),
            segment_end_s=z["segment_end_s"][keep] if windowed else np.empty(0),
        )


def _sorted_concat(parts: list[BatchResult], n_features: int) -> BatchResult:
    indices = np.concatenate([p.indices for p in parts])
    windowed = all(p.segment.size == p.indices.size for p in parts)
    if windowed:
        segment = np.concatenate([p.segment for p in parts])
        order = np.lexsort((segment, indices))  # clip order, then window order
    else:
        order = np.argsort(indices, kind="stable")

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(p, name) for p in parts])[order]

    return BatchResult(
        indices=indices[order],
        features=np.vstack([p.features for p in parts])[order].reshape(len(order), n_features),
        duration_s=cat("duration_s"),
        orig_sample_rate=cat("orig_sample_rate"),
        orig_channels=cat("orig_channels"),
        errors=[],
        segment=cat("segment") if windowed else np.empty(0, np.int64),
        segment_start_s=cat("segment_start_s") if windowed else np.empty(0),
        segment_end_s=cat("segment_end_s") if windowed else np.empty(0),
    )


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()

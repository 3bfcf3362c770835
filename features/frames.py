"""Frame-level output: ``features extract --frames`` writes the values before they are summarised.

Each worker writes the frames of a clip to its own Parquet file beside the
run's checkpoint (``OUT/.checkpoint-frames/<key>/``), row group by row
group as the computer produces them (a day-long clip streams through in
chunks of :data:`features.compute.STREAM_FRAMES` frames), and renames it
into place only when the clip succeeds. A rerun keeps the files of the
clips the checkpoint has. When the set is written, the parent copies
them, one row group at a time, into ``frames/part-00000.parquet``,
``part-00001.parquet``, ... (about :data:`PART_ROWS` rows each, clips in
table order), adding the clip's ``path``, ``label``, ``fold`` and
``group``; ``features.json`` lists every part with its SHA-256.

Columns of a part: ``path``, ``label``, ``fold``, ``group``, ``frame``
(0-based), ``time_s`` (the frame's centre: ``frame * hop_length / sr``
seconds after the clip's offset) and one float32 column per frame-level
value (:func:`features.compute.frame_names`: ``mfcc_1``, ...,
``chroma_12``, ``spectral_centroid``, ..., ``rms``; the rich preset's 211
descriptors). The table's ``<value>_mean`` is the mean of that column over
a clip's frames::

    SELECT path, avg(mfcc_1) AS mfcc_mean_1 FROM 'OUT/frames/*.parquet' GROUP BY path
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FRAMES_CHECKPOINT", "FRAMES_DIR", "PART_ROWS", "ClipFrames", "clip_file", "write_parts"]

FRAMES_DIR = "frames"
#: Where the clips' frame files wait for the set (the run's own: a name the folder rules know as internal).
FRAMES_CHECKPOINT = ".checkpoint-frames"
#: Rows per part file (a part holds whole clips, so it may hold more).
PART_ROWS = 1_000_000


def clip_file(folder: str | os.PathLike[str], shown: str) -> Path:
    """Where a worker puts the frames of the clip named ``shown``."""
    return Path(folder) / f"clip-{hashlib.sha1(shown.encode('utf-8', 'surrogateescape')).hexdigest()}.parquet"


class ClipFrames:
    """Write one clip's frames as they come; the file appears only when the clip succeeds.

    Use as a context manager, whose value is :meth:`write`: the computer's ``sink``.
    """

    def __init__(self, target: Path, names: Sequence[str], seconds_per_frame: float) -> None:
        self.target = Path(target)
        self.names = list(names)
        self.seconds_per_frame = seconds_per_frame
        self.n = 0
        self._tmp = self.target.with_name(f".{self.target.name}.{os.getpid()}.tmp")
        self._writer: Any = None

    def __enter__(self) -> Any:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.target.parent.mkdir(parents=True, exist_ok=True)
        fields = [pa.field("frame", pa.int32()), pa.field("time_s", pa.float64()),
                  *(pa.field(name, pa.float32()) for name in self.names)]
        self._writer = pq.ParquetWriter(self._tmp, pa.schema(fields))
        return self.write

    def write(self, per_frame: np.ndarray) -> None:
        """Append frames [shape=(len(names), n_frames)] as one row group."""
        import pyarrow as pa

        n_frames = per_frame.shape[1]
        index = np.arange(self.n, self.n + n_frames)
        columns = [pa.array(index.astype(np.int32)), pa.array(index * self.seconds_per_frame),
                   *(pa.array(np.asarray(row, dtype=np.float32)) for row in per_frame)]
        self._writer.write_table(pa.Table.from_arrays(columns, schema=self._writer.schema))
        self.n += n_frames

    def __exit__(self, kind: Any, *rest: Any) -> None:
        self._writer.close()
        if kind is None:
            os.replace(self._tmp, self.target)
        else:
            self._tmp.unlink(missing_ok=True)


def write_parts(folder: Path, clips: Iterator[tuple[dict[str, Any], Path]], names: Sequence[str]) -> list[str]:
    """Copy the clips' frame files into ``folder/frames/part-*.parquet``; the parts' relative names.

    ``clips`` yields (identifier values: path, label, fold, group; the
    clip's frame file) in table order. One row group is read at a time.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    (folder / FRAMES_DIR).mkdir(parents=True, exist_ok=True)
    schema = pa.schema([pa.field("path", pa.string()), pa.field("label", pa.string()),
                        pa.field("fold", pa.int64()), pa.field("group", pa.string()),
                        pa.field("frame", pa.int32()), pa.field("time_s", pa.float64()),
                        *(pa.field(name, pa.float32()) for name in names)])
    parts: list[str] = []
    writer, rows = None, 0
    try:
        for ids, path in clips:
            if writer is None or rows >= PART_ROWS:
                if writer is not None:
                    writer.close()
                parts.append(f"{FRAMES_DIR}/part-{len(parts):05d}.parquet")
                writer, rows = pq.ParquetWriter(folder / parts[-1], schema), 0
            source = pq.ParquetFile(path)
            for group in range(source.num_row_groups):
                table = source.read_row_group(group)
                n = table.num_rows
                fixed = [pa.array([ids["path"]] * n, pa.string()), pa.array([ids["label"]] * n, pa.string()),
                         pa.array([ids["fold"]] * n, pa.int64()), pa.array([ids["group"]] * n, pa.string())]
                writer.write_table(pa.Table.from_arrays([*fixed, *table.columns], schema=schema))
                rows += n
        if writer is None:  # no clip: one empty part, so that readers find the columns
            parts.append(f"{FRAMES_DIR}/part-00000.parquet")
            writer = pq.ParquetWriter(folder / parts[-1], schema)
    finally:
        if writer is not None:
            writer.close()
    return parts

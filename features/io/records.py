"""What could not be used, and why: one row of ``errors.csv`` per clip or metadata row.

Every stage that can fail (reading a dataset's metadata, loading audio,
computing features, a worker that died or overran) records an
:class:`ErrorRecord` instead of stopping the run; ``errors.csv`` lists
them with the cause in a few words, so failures can be counted by cause.
"""
from __future__ import annotations

import dataclasses

from ..errors import DatasetLayoutError, UsageError
from . import storage

__all__ = ["ROW_ERROR", "STAGES", "ErrorRecord"]

#: Where an error happened: reading metadata, loading audio, computing
#: features, or the clip's worker process died (``crash``) or overran its
#: time limit (``timeout``).
STAGES = ("metadata", "load", "features", "crash", "timeout")
#: The error type of a metadata row that cannot become a clip.
ROW_ERROR = DatasetLayoutError.__name__


@dataclasses.dataclass(frozen=True)
class ErrorRecord:
    """One clip or metadata row that could not be used; a row of ``errors.csv``.

    Parameters
    ----------
    path : str
        Clip path relative to the dataset root, as far as known ("" if unknown).
    row : int or None
        1-based data row of the metadata CSV (header not counted), or None.
    stage : str
        One of :data:`STAGES`.
    error_type : str
        Class name of the exception, e.g. ``"AudioReadError"``.
    message : str
        What went wrong and what to do about it.
    reason : str
        The cause in a few words, without the file name, so that failures
        can be counted by cause (``"file does not exist"``).
    """

    path: str
    row: int | None
    stage: str
    error_type: str
    message: str
    reason: str = ""

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise UsageError(f"stage={self.stage!r} is not one of: {', '.join(STAGES)}")
        # errors.csv is shared: no URL in it keeps its password or token.
        object.__setattr__(self, "path", storage.redact_text(str(self.path)))
        object.__setattr__(self, "message", storage.redact_text(str(self.message)))

    @classmethod
    def from_exception(
        cls, exc: BaseException, *, path: str = "", row: int | None = None, stage: str = "load"
    ) -> ErrorRecord:
        """Record ``exc`` for one clip.

        Examples
        --------
        >>> ErrorRecord.from_exception(OSError("gone"), path="a.wav").error_type
        'OSError'
        """
        reason = getattr(exc, "reason", None) or f"unexpected {type(exc).__name__}"
        return cls(path, row, stage, type(exc).__name__, str(exc) or repr(exc), reason)

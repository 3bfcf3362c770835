"""The features package's error tree.

One root error; each specific error also subclasses the matching built-in
so callers can catch either (``except OSError`` still catches unreadable
audio).
"""


class FeaturesError(Exception):
    """Root of every error the features package raises on purpose.

    Parameters
    ----------
    message : str
        What went wrong and what to do, naming the file, row or option.
    reason : str, optional
        The same in a few words without the file name, so that failures
        can be counted by cause ("file does not exist"); defaults to the
        class's :attr:`default_reason`.
    """

    default_reason = "error"

    def __init__(self, message: str = "", *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or self.default_reason


class UsageError(FeaturesError, ValueError):
    """A bad option or parameter value; the message names it."""


class DatasetLayoutError(FeaturesError, ValueError):
    """The dataset folder or manifest does not match any supported layout."""


class AudioReadError(FeaturesError, OSError):
    """A clip could not be read or decoded (missing, empty, truncated, not audio)."""

    default_reason = "cannot read the file"

    def __str__(self) -> str:  # OSError would format (errno, strerror) otherwise
        return str(self.args[0]) if self.args else ""


class BadAudioError(FeaturesError, ValueError):
    """A clip decoded but its samples cannot be analysed (e.g. NaN or inf)."""

    default_reason = "samples cannot be analysed"

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
    #: The command line's exit status for this error: 1 a runtime failure,
    #: 2 a usage error (an option or an input that cannot be used),
    #: 5 the output folder is in use by another run.
    exit_status = 1

    def __init__(self, message: str = "", *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or self.default_reason


class UsageError(FeaturesError, ValueError):
    """A bad option or parameter value; the message names it."""

    exit_status = 2


class DatasetLayoutError(FeaturesError, ValueError):
    """The dataset folder or manifest does not match any supported layout."""

    exit_status = 2


class AudioReadError(FeaturesError, OSError):
    """A clip could not be read or decoded (missing, empty, truncated, not audio)."""

    default_reason = "cannot read the file"

    def __str__(self) -> str:  # OSError would format (errno, strerror) otherwise
        return str(self.args[0]) if self.args else ""


class DecoderRefusedError(AudioReadError):
    """libsndfile could not open or decode a clip; the loader then tries audioread.

    It never reaches the user: either audioread decodes the clip, or the
    loader raises a plain :class:`AudioReadError` that says why.
    """

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error), reason="libsndfile cannot decode it")
        self.error = error


class BadAudioError(FeaturesError, ValueError):
    """A clip decoded but its samples cannot be analysed (e.g. NaN or inf)."""

    default_reason = "samples cannot be analysed"


class ClusterError(FeaturesError, RuntimeError):
    """The Dask cluster cannot be reached or cannot run the work."""

    default_reason = "cluster error"


class OutputBusyError(FeaturesError, RuntimeError):
    """Another live run holds the output folder."""

    default_reason = "output folder in use"
    exit_status = 5


class OutputFolderError(UsageError):
    """The output folder may not be written: someone else's files, another kind's set, inside the dataset,
    or a lock that is not a regular file."""


class OutputMismatchError(FeaturesError, ValueError):
    """The files in an output folder are not the set ``features.json`` describes."""

    default_reason = "outputs do not match features.json"


class ExtractionInterrupted(KeyboardInterrupt):
    """Ctrl-C during extraction; finished batches stay in the checkpoint.

    Subclasses :class:`KeyboardInterrupt` (not :class:`FeaturesError`) so
    that plain ``except KeyboardInterrupt`` still catches it.

    Attributes
    ----------
    done, total : int
        Clips finished (saved in the checkpoint) and clips in the dataset.
    """

    def __init__(self, done: int, total: int) -> None:
        self.done = done
        self.total = total
        super().__init__(
            f"interrupted: {done} of {total} clips done; "
            "run the same command again to resume"
        )

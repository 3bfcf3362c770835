"""The features package's error tree.

One root error; each specific error also subclasses the matching built-in
so callers can catch either (``except OSError`` still catches unreadable
audio).
"""


class FeaturesError(Exception):
    """Root of every error the features package raises on purpose."""


class UsageError(FeaturesError, ValueError):
    """A bad option or parameter value; the message names it."""


class DatasetLayoutError(FeaturesError, ValueError):
    """The dataset folder or manifest does not match any supported layout."""


class AudioReadError(FeaturesError, OSError):
    """A clip could not be read or decoded (missing, empty, truncated, not audio)."""


class BadAudioError(FeaturesError, ValueError):
    """A clip decoded but its samples cannot be analysed (e.g. NaN or inf)."""

"""The classify package's error tree.

One root error; each specific error also subclasses the matching built-in
(:class:`ValueError` for bad input, :class:`RuntimeError` for a fit that
failed) so callers can catch either. The command line turns every one of
them into a single ``error: ...`` line and exit status 2, never a
traceback, so each message names the file, row, column or option at fault
and says what to do.
"""


class ClassifyError(Exception):
    """Root of every error the classify package raises on purpose."""


class UsageError(ClassifyError, ValueError):
    """A bad option or parameter value (unknown model name, bad ``--k``)."""


class TableError(ClassifyError, ValueError):
    """The feature table cannot be used (no label column, non-numeric values, ...)."""


class SplitError(ClassifyError, ValueError):
    """The requested evaluation protocol cannot be built from the table."""


class BundleError(ClassifyError, ValueError):
    """A model bundle is missing, damaged or from an incompatible version."""


class ModelError(ClassifyError, RuntimeError):
    """A model could not be fitted on a split (the message names model and split)."""


class RunDirError(ClassifyError, ValueError):
    """A training run folder is missing a file, or a file lacks what a reader needs."""


class CollapsedFitError(ModelError):
    """A Keras fit ended at chance on the rows it held out, even after its restarts."""

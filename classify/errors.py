"""The classify package's error tree.

One root error; each specific error also subclasses the matching built-in
(:class:`ValueError` for bad input, :class:`RuntimeError` for a fit that
failed) so callers can catch either. The command line turns every one of
them into a single ``error: ...`` line, never a traceback, so each message
names the file, row, column or option at fault and says what to do. The
exit status says whose move it is, as in ``features``: 2 when an option or
an input given (table, run folder, model bundle) cannot be used, 1 when the
work itself failed (a model that cannot be fitted, a disk error).
"""


class ClassifyError(Exception):
    """Root of every error the classify package raises on purpose."""

    #: The command line's exit status: 2 usage (an option or input that cannot be used).
    exit_status = 2


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

    exit_status = 1


class RunDirError(ClassifyError, ValueError):
    """A training run folder is missing a file, or a file lacks what a reader needs."""


class CollapsedFitError(ModelError):
    """A Keras fit ended at chance on the rows it held out, even after its restarts."""

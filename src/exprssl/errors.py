"""One exception family, so the CLI can turn any user-facing problem into one line and exit 2.

Every message names the thing at fault (file, gene, column, sample) so users can fix it
without reading a traceback.
"""

from __future__ import annotations


class ExprsslError(Exception):
    """Base class: a problem with the user's input or configuration, not a bug.

    Input problems are also ``ValueError`` (non-numbers ``TypeError``), as scikit-learn and
    numpy callers expect, so ``except ValueError`` keeps working around exprssl estimators."""


class DataFileError(ExprsslError, ValueError):
    """File missing, empty or unreadable."""


class UnknownFormatError(ExprsslError, ValueError):
    """File extension / content not recognised as a supported expression format."""


class TruncatedFileError(DataFileError):
    """A container (HDF5, h5ad, parquet, gzip) that ends early or is corrupt."""


class InvalidValuesError(ExprsslError, ValueError):
    """NaN or infinite values in an expression matrix."""


class NonNumericError(ExprsslError, TypeError):
    """Cells that are not numbers in an expression matrix."""


class NegativeCountsError(ExprsslError, ValueError):
    """Negative values where raw counts (or a log-transform) are expected."""


class DuplicateSamplesError(ExprsslError, ValueError):
    """The same sample id appears more than once."""


class DuplicateGenesError(ExprsslError, ValueError):
    """The same gene id appears more than once and the policy is 'error'."""


class LabelColumnError(ExprsslError, ValueError):
    """A label / id / group column is missing, or has too few classes to learn from."""


class SingleClassError(LabelColumnError):
    """A label column with only one class (nothing to predict)."""


class LabelMatchError(ExprsslError, ValueError):
    """A sample sheet whose ids match no (or too few) expression samples."""


class GeneOverlapError(ExprsslError, ValueError):
    """Too few of the reference genes are present in the data."""


class ConfigError(ExprsslError, ValueError):
    """An invalid option or configuration value (unknown method, bad fraction, ...)."""


class RareClassError(ConfigError):
    """A class with fewer samples (or groups) than the split has parts."""


class ModelNotFoundError(ExprsslError):
    """A saved model directory that does not exist or lacks its files."""


class OutputPathError(ExprsslError):
    """An output path that would replace or lose something exprssl did not write, or that cannot
    be written."""


class OutputSpaceError(OutputPathError):
    """A write that ran out of room: a full disk, a quota, a file-size limit (``ulimit -f``).
    Nothing half-written is left, and the same command succeeds once there is room."""


class TrainingDivergedError(ExprsslError):
    """Training produced a non-finite loss or weights (learning rate too high, bad data scale)."""


def __getattr__(name: str):
    """``NotFittedError`` (an estimator used before ``fit`` or ``load``) subclasses both
    ExprsslError, so the CLI prints it as one line, and scikit-learn's NotFittedError, so
    scikit-learn recognises it. Built on first use: importing scikit-learn takes about a second,
    which ``import exprssl`` and the CLI's start-up should not pay."""
    if name != "NotFittedError":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from sklearn.exceptions import NotFittedError as SklearnNotFittedError

    class NotFittedError(ExprsslError, SklearnNotFittedError):
        """An estimator used before ``fit`` (or ``SSLModel.load``)."""

    NotFittedError.__qualname__ = "NotFittedError"  # picklable by name through this module
    globals()["NotFittedError"] = NotFittedError
    return NotFittedError

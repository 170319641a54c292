"""Exceptions raised for bad user input; each message names the problem and the fix."""

from __future__ import annotations


class MetalabError(Exception):
    """Base class of every error metalab raises on purpose."""


class CanonicalizeError(MetalabError, ValueError):
    """A value cannot be encoded canonically (NaN, unsupported type, key clash)."""


class ParamError(MetalabError, ValueError):
    """A parameter source was declared wrongly."""


class OperationError(MetalabError, ValueError):
    """An operation was declared wrongly."""


class ExperimentError(MetalabError, ValueError):
    """An Experiment was declared wrongly."""


class DuplicateRunError(MetalabError, ValueError):
    """Two param cases produce the same run ID."""


class MissingPathError(MetalabError, FileNotFoundError):
    """A FilePath or DirPath points at nothing."""


class ExecutorError(MetalabError, ValueError):
    """An executor was configured wrongly."""


class StorePathError(MetalabError, ValueError):
    """A path read from a record leads outside the experiment directory."""


class RecordError(MetalabError, ValueError):
    """A run record does not parse or does not belong to its file name."""


class SummaryError(MetalabError, RuntimeError):
    """The summary could not be written or read back complete."""

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


class SchedulerError(MetalabError, RuntimeError):
    """A SLURM command is missing, failed, or refused a request."""

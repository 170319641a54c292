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


class SweepError(MetalabError, RuntimeError):
    """A sweep did not finish: Snakemake failed, a run failed or is missing, or the
    summary could not be written. ``status`` is the SweepStatus, ``cause`` one line."""

    def __init__(self, message: str, status: object = None, returncode: int | None = None):
        super().__init__(message)
        self.status = status
        self.returncode = returncode


class SweepBusyError(MetalabError, RuntimeError):
    """Another sweep is running in the experiment directory."""


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a sweep (a KeyboardInterrupt, so ``except Exception`` never swallows
    it); finished runs are kept and the same command resumes."""


class ShippingError(ExperimentError):
    """The experiment cannot be sent to the jobs (neither by name nor by value)."""

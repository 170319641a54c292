"""Every exception class of metalab (docs/architecture.md, "Failure semantics").

A ``MetalabError`` is raised on purpose for a user's mistake or a state the user can fix;
its message names the problem and the fix, and the CLI prints it as one line (exit 2).
Anything else escaping the CLI is a bug and shows its traceback."""

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


class SchedulerError(MetalabError, RuntimeError):
    """A SLURM command is missing, failed, or refused a request."""


class ExperimentFileError(MetalabError):
    """The experiment file fails to import (syntax error, missing module, ...)."""


class NotAnExperimentError(MetalabError, FileNotFoundError):
    """A path given where an experiment directory was expected is something else."""


class StoreError(MetalabError, ValueError):
    """A store (collection root) path cannot hold experiments."""


class CaptureError(MetalabError, ValueError):
    """An operation asked Capture for something it refuses (bad name, non-scalar metric)."""


class RunCancelled(MetalabError, RuntimeError):
    """The run was asked to stop (SIGTERM: cancel, or a SLURM time limit)."""


class SweepBusyError(MetalabError, RuntimeError):
    """Another metalab run or Snakemake process is active in the experiment directory."""


class UsageError(MetalabError, ValueError):
    """A function was called with arguments that do not fit together."""


class SweepError(MetalabError, RuntimeError):
    """A sweep did not finish: Snakemake failed, runs never ran, or the summary could not
    be written (or a run failed, with ``result(check=True)``). ``status`` is the
    SweepStatus; the message is one line naming the cause."""

    def __init__(self, message: str, status: object = None, returncode: int | None = None):
        super().__init__(message)
        self.status = status
        self.returncode = returncode


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a sweep (a KeyboardInterrupt, so ``except Exception`` never swallows
    it); finished runs are kept and the same command resumes."""


class ShippingError(ExperimentError):
    """The experiment cannot be sent to the jobs (neither by name nor by value)."""


class StoreURIError(MetalabError, ValueError):
    """A store locator (path, file:// URI, database URL) is malformed or unsupported."""


class QueryError(MetalabError, ValueError):
    """A ``where=`` condition does not parse or names a column the index does not hold."""


class UnknownNameError(MetalabError, KeyError):
    """A name that is neither a param nor a metric of the results (the message lists them)."""

    def __str__(self) -> str:  # a KeyError would quote its message
        return str(self.args[0]) if self.args else ""


class IndexDatabaseError(MetalabError):
    """The PostgreSQL index cannot be reached or used (message masks the password)."""

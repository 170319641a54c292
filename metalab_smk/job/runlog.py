"""Route everything a run prints or logs into its log file.

The first line of the log names the process running it (pid, host, SLURM job), so a
``.partial`` log left behind tells ``metalab status`` which run was in progress where.
While a run executes, file descriptors 1 and 2 (so ``print``, C extensions and child
processes too), the ``metalab.run`` logger, subscribed loggers and warnings all go to
``logs/<run_id>_run.log.<pid>.partial``; the file is renamed to its final name at the end.

A successful run that wrote nothing leaves no log: its file, still holding only the
header, is renamed to the next run's partial log and rewritten (a rename instead of a
new file per run), and removed when the process's last run ends (``discard_quiet_log``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

__all__ = ["HEADER_PREFIX", "LOG_FORMAT", "RunLog", "discard_quiet_log", "read_header"]

HEADER_PREFIX = "# metalab run "  # first line of a run log: who runs it (pid, host, SLURM job)
LOG_FORMAT = "%(asctime)s [%(levelname)-7s] [%(name)s] %(message)s"
LOG_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


_RUN_LOGGER = logging.getLogger("metalab.run")  # one per process; its handler changes per run
_RUN_LOGGER.setLevel(logging.DEBUG)
_RUN_LOGGER.propagate = False
_FORMATTER = logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT)


class _Quiet:
    """This process's log file of its last quiet run, kept for its next run."""

    pid = 0
    path: Path | None = None
    file: TextIO | None = None


def _reuse(partial: Path) -> TextIO | None:
    """The kept log file, renamed to ``partial`` (None: there is none to reuse)."""
    kept = _Quiet.file
    if kept is None or _Quiet.pid != os.getpid() or _Quiet.path is None:
        _Quiet.file = None  # none, or a parent process's
        return None
    if _Quiet.path.parent == partial.parent:  # not another experiment's logs
        with contextlib.suppress(OSError):
            os.replace(_Quiet.path, partial)
            _Quiet.file = None
            return kept
    discard_quiet_log()
    return None


def discard_quiet_log() -> None:
    """Remove the kept log of this process's last quiet run (its last run has ended)."""
    kept, _Quiet.file = _Quiet.file, None
    if kept is not None and _Quiet.pid == os.getpid() and _Quiet.path is not None:
        kept.close()
        with contextlib.suppress(OSError):
            os.unlink(_Quiet.path)


class RunLog:
    """Context manager that captures output of one run into ``path``. Set ``succeeded``
    before it ends: a successful run that wrote nothing then leaves no log (``kept``)."""

    def __init__(self, path: Path, header: dict[str, Any], partial: Path) -> None:
        self.path = path
        self.header = header
        self.partial = partial
        self.logger = _RUN_LOGGER
        self.warnings: list[dict[str, Any]] = []
        self.succeeded = False
        self.kept = False  # it wrote nothing and its file waits for the next run
        self._subscribed: list[tuple[logging.Logger, int]] = []
        self._saved_fds: list[int] = []

    def __enter__(self) -> RunLog:
        reused = _reuse(self.partial)
        if reused is not None:
            self._file = reused
            self._file.seek(0)
        else:
            self._file = self._open()
        header = f"{HEADER_PREFIX}{json.dumps(self.header)}\n"
        self._file.write(header)
        self._file.truncate()  # after the header: the file is never empty
        self._header_size = len(header.encode())
        self.handler = logging.StreamHandler(self._file)
        self.handler.setFormatter(_FORMATTER)
        self.logger.addHandler(self.handler)
        sys.stdout.flush()
        sys.stderr.flush()
        for fd in (1, 2):
            self._saved_fds.append(os.dup(fd))
            os.dup2(self._file.fileno(), fd)
        self._saved_showwarning = warnings.showwarning
        warnings.showwarning = self._show_warning
        self._warning_filters = warnings.catch_warnings()
        self._warning_filters.__enter__()
        warnings.simplefilter("default")
        return self

    def _show_warning(self, message, category, filename, lineno, file=None, line=None) -> None:
        self.warnings.append(
            {
                "category": category.__name__,
                "message": str(message),
                "filename": str(filename),
                "lineno": lineno,
            }
        )
        self.logger.warning(f"{category.__name__}: {message} ({filename}:{lineno})")

    def warn(self, message: str) -> None:
        """A warning of metalab's about this run: kept in its record and logged."""
        self.warnings.append({"category": "UserWarning", "message": message})
        self.logger.warning(f"UserWarning: {message}")

    def subscribe(self, name: str, level: int | str = logging.DEBUG) -> None:
        """Also write records of the logger ``name`` (and its children) to this run's log."""
        target = logging.getLogger(name)
        self._subscribed.append((target, target.level))
        target.addHandler(self.handler)
        target.setLevel(level)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._warning_filters.__exit__(None, None, None)
        warnings.showwarning = self._saved_showwarning
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, saved in zip((1, 2), self._saved_fds, strict=True):
            os.dup2(saved, fd)
            os.close(saved)
        for target, level in self._subscribed:
            target.removeHandler(self.handler)
            target.setLevel(level)
        self.logger.removeHandler(self.handler)
        self._file.flush()
        if self.succeeded and os.fstat(self._file.fileno()).st_size == self._header_size:
            _Quiet.pid, _Quiet.path, _Quiet.file = os.getpid(), self.partial, self._file
            self.kept = True
            return
        self._file.close()
        os.replace(self.partial, self.path)

    def _open(self) -> TextIO:
        try:
            return open(self.partial, "w", buffering=1, encoding="utf-8")
        except FileNotFoundError:  # the first run of a store (mkdir only then: it costs)
            self.partial.parent.mkdir(parents=True, exist_ok=True)
            return open(self.partial, "w", buffering=1, encoding="utf-8")


def read_header(path: Path) -> dict[str, Any]:
    """The header of a run log (``{}`` when it has none or cannot be read)."""
    try:
        with open(path, encoding="utf-8") as handle:
            first = handle.readline()
    except OSError:
        return {}
    if not first.startswith(HEADER_PREFIX):
        return {}
    try:
        return json.loads(first[len(HEADER_PREFIX) :])
    except ValueError:
        return {}

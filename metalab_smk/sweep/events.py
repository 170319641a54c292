"""Events of a sweep (upstream's ``metalab.events``), built host-side from the files.

Jobs never call back: the watcher sees a run start when its ``.partial`` log appears, and
finish, fail or be cancelled when its record appears. Per run the order is started <
finished/failed/cancelled (a run too short to be seen running gets no started event);
across runs there is no order. A callback that raises is reported once per kind and the
sweep goes on.
"""

from __future__ import annotations

import contextlib
import enum
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from metalab_smk.store.jsonio import read_json
from metalab_smk.store.layout import ExperimentDir

__all__ = ["Event", "EventCallback", "EventKind", "EventWatcher", "emit_event"]


class EventKind(enum.StrEnum):
    RUN_STARTED = "run_started"
    RUN_FINISHED = "run_finished"
    RUN_FAILED = "run_failed"
    RUN_CANCELLED = "run_cancelled"
    RUN_SKIPPED = "run_skipped"  # resume: the run already has a success record
    ARTIFACT_SAVED = "artifact_saved"  # not emitted: artifacts are in the finished record
    PROGRESS = "progress"
    LOG = "log"
    FINISHED = "finished"  # the sweep ended (the counts are in the payload)


@dataclass(frozen=True)
class Event:
    """``kind``, ``run_id`` (None for sweep-wide events), ``timestamp``, ``payload``.

    ``event["kind"]`` / ``event["done"]`` read the payload like the dict events of
    earlier metalab-smk versions."""

    kind: EventKind
    run_id: str | None
    timestamp: datetime
    payload: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        if key == "kind":
            return str(self.kind)
        if key == "run_id":
            return self.run_id
        return self.payload[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    @classmethod
    def make(cls, kind: EventKind, run_id: str | None = None, **payload: Any) -> Event:
        return cls(kind, run_id, datetime.now(), payload)

    @classmethod
    def run_started(cls, run_id: str, **extra: Any) -> Event:
        return cls.make(EventKind.RUN_STARTED, run_id, **extra)

    @classmethod
    def run_finished(cls, run_id: str, **extra: Any) -> Event:
        return cls.make(EventKind.RUN_FINISHED, run_id, **extra)

    @classmethod
    def run_failed(cls, run_id: str, error: str, **extra: Any) -> Event:
        return cls.make(EventKind.RUN_FAILED, run_id, error=error, **extra)

    @classmethod
    def run_skipped(cls, run_id: str, reason: str = "already exists") -> Event:
        return cls.make(EventKind.RUN_SKIPPED, run_id, reason=reason)

    @classmethod
    def progress(
        cls, run_id: str | None, current: int, total: int, message: str = "", running: int = 0
    ) -> Event:
        return cls.make(
            EventKind.PROGRESS,
            run_id,
            current=current,
            total=total,
            message=message,
            running=running,
        )


EventCallback = Callable[[Event], None]


def emit_event(callback: EventCallback | None, event: Event) -> None:
    """Deliver ``event``; a failing callback is reported on stderr, never raised."""
    if callback is None:
        return
    try:
        callback(event)
    except Exception as exc:
        print(f"metalab: on_event failed for {event.kind}: {exc!r}", file=sys.stderr)


def _names(directory: os.PathLike[str], suffix: str) -> set[str]:
    try:
        return {n[: -len(suffix)] for n in os.listdir(directory) if n.endswith(suffix)}
    except OSError:
        return set()


class EventWatcher:
    """Turns new files of the runs of one invocation into events, one poll at a time."""

    def __init__(
        self,
        layout: ExperimentDir,
        running: Iterable[str],
        skipped: Iterable[str],
        callback: EventCallback,
        skip_events: bool = True,
    ) -> None:
        self.layout = layout
        self.callback = callback
        self.pending = set(running)
        self.started: set[str] = set()
        self.skipped = list(skipped)
        self.total = len(self.pending) + len(self.skipped)
        self.finished = 0
        self.failed = 0
        self._last: tuple[int, int, int] | None = None
        # files left by earlier invocations (a failed record, a killed run's partial log)
        # are not news: only a newer version of them is
        self._old_failed = self._mtimes(self.layout.failed_record, ".json", layout.failed_dir)
        partials = layout.partial_logs()  # one per process: the newest of each run
        self._old_partial = {}
        for run_id in partials.keys() & self.pending:
            with contextlib.suppress(OSError):
                self._old_partial[run_id] = os.stat(partials[run_id]).st_mtime_ns
        for run_id in self.skipped if skip_events else ():
            emit_event(callback, Event.run_skipped(run_id))

    def _mtimes(
        self, path_of: Callable[[str], os.PathLike[str]], suffix: str, directory: os.PathLike[str]
    ) -> dict[str, int]:
        found = {}
        for run_id in _names(directory, suffix) & self.pending:
            with contextlib.suppress(OSError):
                found[run_id] = os.stat(path_of(run_id)).st_mtime_ns
        return found

    def _new(self, names: set[str], old: dict[str, int], path_of: Callable[[str], Any]) -> set[str]:
        fresh = set()
        for run_id in names:
            if run_id in old:
                try:
                    if os.stat(path_of(run_id)).st_mtime_ns == old[run_id]:
                        continue
                except OSError:
                    continue
                del old[run_id]
            fresh.add(run_id)
        return fresh

    def poll(self) -> None:
        """Emit the events of everything that happened since the last poll."""
        if not self.pending:
            return
        done = _names(self.layout.runs_dir, ".json") & self.pending
        failed = (_names(self.layout.failed_dir, ".json") & self.pending) - done
        failed = self._new(failed, self._old_failed, self.layout.failed_record)
        partials = self.layout.partial_logs()
        partial = self._new(partials.keys() & self.pending, self._old_partial, partials.get)
        for run_id in sorted(partial - self.started - done - failed):
            self.started.add(run_id)
            emit_event(self.callback, Event.run_started(run_id))
        for run_id in sorted(done):
            self._ended(run_id, self.layout.record(run_id))
        for run_id in sorted(failed):
            self._ended(run_id, self.layout.failed_record(run_id))
        counts = (self.finished, self.failed, len(self.started & self.pending))
        if counts != self._last:
            self._last = counts
            event = Event.progress(
                None,
                len(self.skipped) + self.finished + self.failed,
                self.total,
                running=counts[2],
            )
            emit_event(self.callback, event)

    def _ended(self, run_id: str, path: os.PathLike[str]) -> None:
        try:
            record = read_json(path)
        except (OSError, ValueError):
            return  # not readable yet: next poll
        status = record.get("status")
        if status == "interrupted":  # it runs again in this sweep: not an end yet
            with contextlib.suppress(OSError):
                self._old_failed[run_id] = os.stat(path).st_mtime_ns
            self.started.discard(run_id)
            return
        self.pending.discard(run_id)
        if status == "success":
            self.finished += 1
            event = Event.run_finished(
                run_id, duration_ms=record.get("duration_ms"), metrics=record.get("metrics", {})
            )
        else:
            self.failed += 1
            error = record.get("error") or {}
            kind = EventKind.RUN_CANCELLED if status == "cancelled" else EventKind.RUN_FAILED
            event = Event.make(
                kind, run_id, error=error.get("message", ""), error_type=error.get("type")
            )
        emit_event(self.callback, event)

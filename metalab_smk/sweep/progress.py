"""Progress display of a running sweep: rich when installed, plain lines otherwise,
plus ``on_event`` callbacks with the counts."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from metalab_smk.sweep.status import SweepStatus

__all__ = ["Progress"]


class Progress:
    """Shows done/failed/total as the record files appear."""

    def __init__(
        self, show: bool, on_event: Callable[[dict[str, Any]], None] | None, total: int
    ) -> None:
        self._show = show
        self._on_event = on_event
        self._last: tuple[int, int] | None = None
        self._last_print = 0.0
        self._bar: Any = None
        if show:
            try:
                from rich.progress import Progress as RichProgress

                if sys.stdout.isatty():
                    self._bar = RichProgress(transient=False)
                    self._task = self._bar.add_task("runs", total=total)
                    self._bar.start()
            except ImportError:
                self._bar = None

    @classmethod
    def create(
        cls,
        progress: bool | None,
        verbose: bool,
        on_event: Callable[[dict[str, Any]], None] | None,
        total: int,
    ) -> Progress | None:
        show = verbose if progress is None else progress
        if not show and on_event is None:
            return None
        return cls(show, on_event, total)

    def _emit(self, kind: str, status: SweepStatus) -> None:
        if self._on_event is not None:
            self._on_event(
                {
                    "kind": kind,
                    "experiment_id": status.experiment_id,
                    "total": status.total,
                    "done": status.done,
                    "failed": status.failed,
                    "missing": status.missing,
                }
            )

    def update(self, status: SweepStatus) -> None:
        counts = (status.done, status.failed)
        if counts == self._last:
            return
        self._last = counts
        self._emit("progress", status)
        if self._bar is not None:
            self._bar.update(
                self._task,
                completed=status.done + status.failed,
                description=f"runs ({status.failed} failed)",
            )
        elif self._show and time.monotonic() - self._last_print >= 2:
            self._last_print = time.monotonic()
            print(f"metalab: {status.done}/{status.total} done, {status.failed} failed", flush=True)

    def close(self, status: SweepStatus) -> None:
        self.update(status)
        self._emit("finished", status)
        if self._bar is not None:
            self._bar.stop()
        if self._show:
            print(
                f"metalab: finished: {status.done}/{status.total} done, "
                f"{status.failed} failed, {status.missing} missing",
                flush=True,
            )
            if status.failed:
                print(
                    f"metalab: see the failed runs with `metalab status {status.directory}`",
                    flush=True,
                )

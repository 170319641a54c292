"""Progress display of a running sweep (upstream's ``metalab.Progress``).

A ``Progress`` is an event callback: it counts finished / failed / skipped runs from the
events and shows done/total plus the latest value and running mean of the metrics named in
``display_metrics``: a rich bar when rich is installed and stdout is a terminal, plain
lines (at most one every ``interval`` seconds) otherwise.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from metalab_smk.sweep.events import Event, EventKind

__all__ = ["MetricDisplay", "Progress", "SimpleProgressTracker", "create_progress_tracker"]


@dataclass
class MetricDisplay:
    """How one metric shows: ``"loss"``, ``"loss:.3e"`` or ``MetricDisplay(name, format=,
    label=, formatter=)``."""

    name: str
    format: str | None = None
    label: str | None = None
    formatter: Callable[[Any], str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.label = self.label or self.name

    def format_value(self, value: Any) -> str:
        if self.formatter is not None:
            return self.formatter(value)
        if self.format and isinstance(value, (int, float)) and not isinstance(value, bool):
            return f"{value:{self.format}}"
        if isinstance(value, float):
            return f"{value:.2e}" if value and not 1e-3 <= abs(value) <= 1e4 else f"{value:.4g}"
        return str(value)

    @classmethod
    def normalize(cls, spec: str | MetricDisplay) -> MetricDisplay:
        if isinstance(spec, cls):
            return spec
        if not isinstance(spec, str):
            raise TypeError(f"display_metrics: expected 'name' or 'name:format', got {spec!r}")
        name, _, fmt = spec.partition(":")
        return cls(name.strip(), fmt or None)


class Progress:
    """``Progress(title="Experiment", display_metrics=None, show=True, interval=2.0,
    style="auto")``; pass it as ``metalab.run(..., progress=Progress(...))``. ``style``:
    ``"auto"`` (a rich bar on a terminal), ``"rich"`` (always, when rich is installed) or
    ``"simple"`` (plain lines)."""

    STYLES = ("auto", "rich", "simple")

    def __init__(
        self,
        title: str = "Experiment",
        display_metrics: list[str | MetricDisplay] | None = None,
        show: bool = True,
        interval: float = 2.0,
        total: int = 0,
        style: str = "auto",
    ) -> None:
        if style not in self.STYLES:
            raise ValueError(f"Progress(style={style!r}): use one of {', '.join(self.STYLES)}.")
        self.style = style
        self.title = title
        self.display_metrics = [MetricDisplay.normalize(m) for m in display_metrics or []]
        self.show = show
        self.interval = interval
        self.total = total
        self.completed = self.failed = self.skipped = self.running = 0
        self.latest: dict[str, Any] = {}
        self._sums: dict[str, tuple[float, int]] = {}
        self._bar: Any = None
        self._last_print = 0.0
        self._started = time.monotonic()

    # upstream's tracker protocol -----------------------------------------------------
    def __enter__(self) -> Progress:
        self._started = time.monotonic()
        if self.show and (self.style == "rich" or (self.style == "auto" and sys.stdout.isatty())):
            try:
                from rich.progress import Progress as RichProgress
            except ImportError:
                RichProgress = None  # type: ignore[misc, assignment]
            if RichProgress is not None:
                self._bar = RichProgress(transient=False)
                self._task = self._bar.add_task(self.title, total=self.total or None)
                self._bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._render(force=True)
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if self.show:
            print(
                f"metalab: {self.title}: {self.done}/{self.total} done ({self.completed} "
                f"succeeded, {self.failed} failed, {self.skipped} skipped) in "
                f"{time.monotonic() - self._started:.1f}s{self._metrics_text()}",
                flush=True,
            )

    @property
    def done(self) -> int:
        return self.completed + self.failed + self.skipped

    def __call__(self, event: Event) -> None:
        kind = event.kind
        if kind == EventKind.RUN_FINISHED:
            self.completed += 1
            self._remember(event.payload.get("metrics") or {})
        elif kind in (EventKind.RUN_FAILED, EventKind.RUN_CANCELLED):
            self.failed += 1
        elif kind == EventKind.RUN_SKIPPED:
            self.skipped += 1
            return  # shown with the next progress event (resume may skip 100,000 runs)
        elif kind == EventKind.PROGRESS:
            self.total = event.payload.get("total", self.total)
            self.running = event.payload.get("running", self.running)
        else:
            return
        self._render()

    # display ------------------------------------------------------------------------
    def _remember(self, metrics: dict[str, Any]) -> None:
        for spec in self.display_metrics:
            value = metrics.get(spec.name)
            if value is None:
                continue
            self.latest[spec.name] = value
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if numeric and math.isfinite(value):
                total, count = self._sums.get(spec.name, (0.0, 0))
                self._sums[spec.name] = (total + value, count + 1)

    def mean(self, name: str) -> float | None:
        total, count = self._sums.get(name, (0.0, 0))
        return total / count if count else None

    def _metrics_text(self) -> str:
        parts = []
        for spec in self.display_metrics:
            if spec.name in self.latest:
                text = f"{spec.label}={spec.format_value(self.latest[spec.name])}"
                mean = self.mean(spec.name)
                if mean is not None:
                    text += f" (mean {spec.format_value(mean)})"
                parts.append(text)
        return (" | " + " ".join(parts)) if parts else ""

    def line(self) -> str:
        """The current progress line: done/total, counts and the chosen metrics."""
        return (
            f"[{self.title}] {self.done}/{self.total} done: {self.completed} ok, "
            f"{self.failed} failed, {self.skipped} skipped, {self.running} running"
            + self._metrics_text()
        )

    def _render(self, force: bool = False) -> None:
        if not self.show:
            return
        if self._bar is not None:
            self._bar.update(
                self._task,
                total=self.total or None,
                completed=self.done,
                description=f"{self.title} ({self.failed} failed){self._metrics_text()}",
            )
        elif force or time.monotonic() - self._last_print >= self.interval:
            self._last_print = time.monotonic()
            print(f"metalab: {self.line()}", flush=True)


SimpleProgressTracker = Progress  # upstream's plain-text tracker


def create_progress_tracker(
    total: int = 0,
    title: str = "Experiment",
    display_metrics: list[str | MetricDisplay] | None = None,
    **_ignored: object,
) -> Progress:
    """Upstream's factory: a ``Progress`` (rich when available, plain lines otherwise)."""
    return Progress(title=title, display_metrics=display_metrics, total=total)

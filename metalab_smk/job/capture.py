"""Capture and Runtime: what an operation uses to record results and to know its run."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from metalab_smk.core.values import is_int, is_numpy, is_numpy_scalar, numpy_to_python
from metalab_smk.errors import CaptureError, RunCancelled
from metalab_smk.job.runlog import RunLog
from metalab_smk.store.jsonio import atomic_write_bytes, atomic_write_json, atomic_write_via
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.records import ArtifactDescriptor
from metalab_smk.store.upstream import artifact_manifest

__all__ = ["Capture", "CaptureError", "RunCancelled", "Runtime"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40, "critical": 50}
_FORMAT_SUFFIX = {
    "json": ".json",
    "numpy": ".npz",
    "pickle": ".pkl",
    "bytes": ".bin",
    "text": ".txt",
}


def check_name(kind: str, name: Any) -> str:
    """A name safe to use as one file name inside the run's directory."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise CaptureError(
            f"{kind} name {name!r} is not allowed: names become file names inside the run's "
            "directory, so use letters, digits, '_', '-' and '.' only (no '/', no '..', not "
            "starting with '.'), e.g. 'weights' or 'loss_curve'."
        )
    return name


def scalar(name: str, value: Any) -> int | float | bool | str:
    """``value`` as a Python scalar, or a CaptureError saying what to use instead."""
    if is_numpy_scalar(value):
        value = numpy_to_python(value)
    if isinstance(value, (bool, int, float, str)):
        return value
    raise CaptureError(
        f"metric {name!r} must be a scalar (int, float, bool or str), got "
        f"{type(value).__name__}; record arrays and structures with capture.data({name!r}, "
        "value) or capture.artifact(...)."
    )


class Runtime:
    """Run facts for the operation: ``logger``, ``scratch_dir`` (removed afterwards),
    ``metadata`` (the experiment's), ``run_id``, ``run_index``, ``experiment_id``,
    ``experiment_dir`` and cancellation (``cancelled``, ``check_cancelled()``)."""

    def __init__(
        self,
        logger: logging.Logger,
        facts: dict[str, Any],
        metadata: dict[str, Any] | None = None,
    ):
        self.logger = logger
        self.facts = facts
        self.metadata = dict(metadata or {})
        self.run_id: str = facts["run_id"]
        self.run_index: int | None = facts.get("run_index")
        self.experiment_id: str | None = facts.get("experiment_id")
        self.experiment_dir: str | None = facts.get("experiment_dir")
        # plain flags, not threading.Event: signal handlers set them, and a handler that
        # takes a lock deadlocks when a second signal arrives while it holds it
        self._cancel = False
        self._stop = False  # a warning: the job ends soon (time limit, stop)
        self.stop_seen = False  # the operation asked should_stop() and was told to stop
        self.checkpointing = False  # the operation uses its checkpoint directory
        self.deadline: float | None = None  # the job's end (time.time()), when known
        self._scratch: Path | None = None
        self.in_operation = False  # True while the operation's own code runs

    @property
    def scratch_dir(self) -> Path:
        """A private temporary directory, created on first use, removed after the run."""
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix=f"metalab-{self.run_id}-"))
        return self._scratch

    def remove_scratch(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    @property
    def cancelled(self) -> bool:
        return self._cancel

    def cancel(self) -> None:
        self._cancel = True

    def check_cancelled(self) -> None:
        """Raise RunCancelled if the run was asked to stop."""
        if self.cancelled:
            raise RunCancelled("the run was cancelled")

    def request_stop(self) -> None:
        self._stop = True

    @property
    def stop_requested(self) -> bool:
        return self._stop


class Capture:
    """Records metrics, stepped metrics, data, artifacts and log lines of one run, and
    gives long runs their checkpoint directory, attempt number and stop warnings."""

    def __init__(
        self,
        layout: ExperimentDir,
        run_id: str,
        runlog: RunLog,
        allow_pickle: bool = False,
        runtime: Runtime | None = None,
        attempt: int = 1,
    ) -> None:
        self._layout = layout
        self._run_id = run_id
        self._runlog = runlog
        self._allow_pickle = allow_pickle
        self._runtime = runtime
        self.attempt = attempt  # 1 on the first attempt, 2 after an interruption, ...
        self.checkpoint_used = False
        self._metrics: dict[str, Any] = {}
        self._steps: dict[str, list[list[Any]]] = {}
        self._data_names: set[str] = set()
        self._artifacts: list[ArtifactDescriptor] = []

    # long runs -----------------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path:
        """This run's directory for checkpoints (made on first use): kept across its
        attempts (time limit, preemption, stop, crash), removed once it succeeds."""
        path = self._layout.checkpoint(self._run_id)
        path.mkdir(parents=True, exist_ok=True)
        self.checkpoint_used = True
        if self._runtime is not None:  # a warning then lets it save instead of raising
            self._runtime.checkpointing = True
        return path

    def should_stop(self) -> bool:
        """True once the job was warned that it ends soon (SLURM's signal before the time
        limit, preemption, ``metalab stop``, Ctrl-C): save a checkpoint and return; the run
        is then interrupted, not failed, and a later attempt continues it."""
        stop = self._runtime is not None and self._runtime.stop_requested
        if stop and self._runtime is not None:
            self._runtime.stop_seen = True
        return stop

    def time_left(self) -> float | None:
        """Seconds until the job's time limit, when known (in a SLURM job), else None."""
        deadline = self._runtime.deadline if self._runtime is not None else None
        return None if deadline is None else max(0.0, deadline - time.time())

    def continue_steps(self) -> None:
        """Take over the stepped metrics earlier attempts wrote (a step logged again
        replaces the earlier value)."""
        directory = self._layout.results(self._run_id)
        if not directory.is_dir():
            return
        for path in directory.glob("*.json"):
            try:
                payload = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(payload, dict) and payload.get("type") == "stepped_metric":
                self._steps[path.stem] = [list(point) for point in payload.get("data", [])]

    # metrics -------------------------------------------------------------------------
    def metric(self, name: str, value: Any, step: int | None = None) -> None:
        """Record a scalar; with ``step`` it joins a curve and the latest value is kept."""
        check_name("metric", name)
        value = scalar(name, value)
        if step is not None:
            if not is_int(step):
                raise CaptureError(f"metric {name!r}: step must be an int, got {step!r}.")
            if name in self._data_names:
                raise CaptureError(f"metric {name!r}: that name is already used by data.")
            self._steps.setdefault(name, []).append([step, value])
        self._metrics[name] = value

    def log_metrics(self, values: dict[str, Any], step: int | None = None) -> None:
        for name, value in values.items():
            self.metric(name, value, step)

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self._metrics)

    # structured data -----------------------------------------------------------------
    def data(self, name: str, obj: Any, metadata: dict[str, Any] | None = None) -> None:
        """Store JSON-like ``obj`` (numpy arrays converted) as ``results/<run>/<name>.json``."""
        check_name("data", name)
        if name in self._steps:
            raise CaptureError(f"data {name!r}: that name is already a stepped metric.")
        self._data_names.add(name)
        payload = {"name": name, "type": "data", "data": obj, "metadata": metadata or {}}
        if all(hasattr(obj, a) for a in ("dtype", "shape", "tolist")):  # numpy: rebuilt on load
            payload.update(data=obj.tolist(), dtype=str(obj.dtype), shape=list(obj.shape))
        try:
            atomic_write_json(self._layout.results(self._run_id) / f"{name}.json", payload)
        except (TypeError, ValueError) as exc:
            raise CaptureError(f"data {name!r} is not JSON-serialisable: {exc}") from None

    # artifacts -----------------------------------------------------------------------
    def _store(
        self, name: str, kind: str, fmt: str, write, suffix: str, metadata: dict[str, Any] | None
    ) -> ArtifactDescriptor:
        target = self._layout.artifacts(self._run_id) / f"{name}{suffix}"
        if any(a.name == name for a in self._artifacts):
            raise CaptureError(f"artifact {name!r} was already captured in this run.")
        write(target)
        content = target.read_bytes()
        descriptor = ArtifactDescriptor(
            artifact_id=f"{self._run_id}/{name}",
            name=name,
            kind=kind,
            format=fmt,
            uri=target.relative_to(self._layout.root).as_posix(),
            content_hash=hashlib.sha256(content).hexdigest()[:16],
            size_bytes=len(content),
            metadata=dict(metadata or {}),
        )
        self._artifacts.append(descriptor)
        atomic_write_json(
            self._layout.artifact_manifest(self._run_id),
            artifact_manifest(self._layout.root, [a.__dict__ for a in self._artifacts]),
        )
        return descriptor

    def artifact(
        self,
        name: str,
        obj: Any,
        kind: str | None = None,
        format: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> ArtifactDescriptor:
        """Store ``obj``: numpy arrays as .npz, JSON-like values as .json; pickle only with
        ``format="pickle"``."""
        check_name("artifact", name)
        fmt = format or (kind if kind in _FORMAT_SUFFIX else None) or _infer_format(obj)
        if fmt not in _FORMAT_SUFFIX:
            raise CaptureError(
                f"artifact {name!r}: unknown format {fmt!r}; use one of "
                f"{', '.join(_FORMAT_SUFFIX)}."
            )
        if fmt == "pickle" and format != "pickle" and not self._allow_pickle:
            raise CaptureError(
                f"artifact {name!r}: {type(obj).__name__} has no JSON or numpy form; pass "
                "format='pickle' to store it as a pickle (loading it later needs "
                "allow_pickle=True)."
            )
        data = _serialise(name, obj, fmt)
        return self._store(
            name,
            kind or fmt,
            fmt,
            lambda t: atomic_write_bytes(t, data),
            _FORMAT_SUFFIX[fmt],
            metadata,
        )

    def file(
        self,
        name: str,
        path: str | Path,
        kind: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> ArtifactDescriptor:
        """Copy the file at ``path`` into the run's artifacts."""
        check_name("file", name)
        source = Path(path)
        if not source.is_file():
            raise CaptureError(f"capture.file({name!r}, {str(path)!r}): no such file.")

        def copy(target: Path) -> None:
            atomic_write_via(target, lambda tmp: shutil.copyfile(source, tmp))

        fmt = source.suffix.lstrip(".") or "file"
        return self._store(name, kind or "file", fmt, copy, source.suffix, metadata)

    def figure(
        self,
        name: str,
        fig: Any,
        format: str = "png",
        dpi: int = 150,
        metadata: dict[str, Any] | None = None,
        close: bool = True,
        **savefig_kwargs: Any,
    ) -> ArtifactDescriptor:
        """Save a matplotlib figure (``fig.savefig``) as an artifact."""
        check_name("figure", name)
        buffer = io.BytesIO()
        savefig_kwargs.setdefault("bbox_inches", "tight")
        fig.savefig(buffer, format=format, dpi=dpi, **savefig_kwargs)
        if close:
            try:
                import matplotlib.pyplot as plt

                plt.close(fig)
            except ImportError:
                pass
        data = buffer.getvalue()
        return self._store(
            name, "figure", format, lambda t: atomic_write_bytes(t, data), f".{format}", metadata
        )

    @property
    def artifacts(self) -> list[ArtifactDescriptor]:
        return list(self._artifacts)

    # logging -------------------------------------------------------------------------
    @property
    def logger(self) -> logging.Logger:
        return self._runlog.logger

    def log(self, message: str, level: str = "info") -> None:
        self._runlog.logger.log(_LEVELS.get(str(level).lower(), logging.INFO), message)

    def subscribe_logger(self, name: str, level: int | str = logging.DEBUG) -> None:
        """Send records of the logger ``name`` to this run's log."""
        self._runlog.subscribe(name, level)

    # end of run ----------------------------------------------------------------------
    def finalize(self) -> dict[str, Any]:
        """Write stepped metrics; return what the record needs."""
        for name, points in self._steps.items():
            payload = {
                "name": name,
                "type": "stepped_metric",
                "data": sorted({step: [step, value] for step, value in points}.values()),
                "metadata": {"columns": ["step", "value"]},
            }
            atomic_write_json(self._layout.results(self._run_id) / f"{name}.json", payload)
        return {
            "metrics": self.metrics,
            "stepped_metrics": sorted(self._steps),
            "artifacts": [a.__dict__ for a in self._artifacts],
        }


def _infer_format(obj: Any) -> str:
    if is_numpy(obj):
        return "numpy"
    if isinstance(obj, bytes):
        return "bytes"
    if obj is None or isinstance(obj, (dict, list, tuple, str, int, float, bool)):
        return "json"
    return "pickle"


def _serialise(name: str, obj: Any, fmt: str) -> bytes:
    if fmt == "numpy":
        import numpy as np

        array = np.asarray(obj)
        if array.dtype.hasobject:
            raise CaptureError(
                f"artifact {name!r}: an object array needs pickle; pass format='pickle'."
            )
        buffer = io.BytesIO()
        np.savez(buffer, arr=array)  # upstream's layout: one array saved as `arr`
        return buffer.getvalue()
    if fmt == "json":
        try:
            return json.dumps(obj, default=_json_default, allow_nan=True).encode()
        except (TypeError, ValueError) as exc:
            raise CaptureError(f"artifact {name!r} is not JSON-serialisable: {exc}") from None
    if fmt == "pickle":
        import pickle

        return pickle.dumps(obj)
    if fmt == "bytes":
        return bytes(obj)
    return str(obj).encode()


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")

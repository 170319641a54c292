"""Where the dashboard and the report read from: the file store, through the Results layer.

``DataSource`` is the seam: the PostgreSQL index (``--db``, ``index_source.py``)
implements the same methods.
Every name coming from a request (experiment ID, run ID, artifact or data name) is looked
up among the names the store lists; nothing is joined into a path unchecked.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from metalab_smk.compile.reader import read_compiled
from metalab_smk.errors import MetalabError, StorePathError
from metalab_smk.results.summary import read_summary
from metalab_smk.store.checkpoints import run_checkpoint
from metalab_smk.store.jsonio import read_json
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.store.safepath import inside, is_run_id

__all__ = ["DataSource", "FileSource", "NotFound"]

LOG_TAIL_BYTES = 256 * 1024
MANIFEST_KEYS = (
    "experiment_id",
    "description",
    "tags",
    "metadata",
    "operation",
    "params",
    "n_cases",
    "replicates",
    "n_runs",
    "root_seed",
    "resources",
    "code_fp",
    "context_fp",
    "git_commit",
    "metalab_version",
    "compiled_at",
)
BACKGROUND_ROWS = 5000  # larger tables reload in the background while the old one is served


class NotFound(MetalabError):
    """A name from a request that the store does not hold."""


class DataSource(Protocol):
    """What the dashboard and the report need from a store: the seam for other back ends
    (``FileSource`` reads the files; a database index implements the same methods).

    ``experiment_id`` arguments are the name an experiment is listed under: its
    ``key`` when the listing gives one (``STORE@name:version`` over several stores,
    ``stores.py``), else its ``experiment_id``. Unknown names raise ``NotFound``;
    ``frame`` is a runs table like ``Results.frame`` (``run_id``, ``status``,
    ``param_*``, metrics, ...); ``steps`` has ``run_id, name, step, value``; a source may
    also have ``warm()`` (called in the background when the server starts)."""

    label: str

    def experiments(self) -> list[dict[str, Any]]: ...
    def frame(self, experiment_id: str) -> pd.DataFrame: ...
    def steps(self, experiment_id: str) -> pd.DataFrame: ...
    def manifest(self, experiment_id: str) -> dict[str, Any]: ...
    def record(self, experiment_id: str, run_id: str) -> dict[str, Any]: ...
    def run_steps(self, experiment_id: str, run_id: str) -> dict[str, list[list[float]]]: ...
    def log(self, experiment_id: str, run_id: str) -> dict[str, Any]: ...
    def artifact_path(self, experiment_id: str, run_id: str, name: str) -> tuple[Path, str]: ...
    def data_names(self, experiment_id: str, run_id: str) -> list[str]: ...
    def checkpoint(self, experiment_id: str, run_id: str) -> dict[str, int] | None: ...
    def data(self, experiment_id: str, run_id: str, name: str) -> Any: ...
    def in_progress(self, experiment_id: str) -> list[str]: ...


def _no(_: Any) -> bool:
    return False


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def _inside(root: Path, path: Path) -> Path:
    """``path`` when it lies inside ``root`` with symbolic links resolved, else NotFound."""
    try:
        return inside(root, path)
    except StorePathError:
        raise NotFound(f"{path.name} leads outside the served directory") from None


def _read_json(root: Path, path: Path) -> Any:
    """The JSON file at ``path``, refused (NotFound) when a link leads it out of ``root``."""
    return read_json(_inside(root, path))


class _Refresher:
    """Values cached by name and reloaded when their key (file times) changes: at once
    when the last load was quick, otherwise in a background thread while the previous
    value is still served (so pages stay fast during a live sweep of 100,000 runs)."""

    SYNC_SECONDS = 0.1

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[Any, tuple[Any, Any, float]] = {}
        self._loading: set[Any] = set()

    def get(
        self, name: Any, key: Any, load: Callable[[], Any], large: Callable[[Any], bool] = bool
    ) -> Any:
        """The value for ``key``; when stale and the last load was slow or its value
        ``large``, the stale value while a background thread reloads."""
        with self._lock:
            entry = self._entries.get(name)
            if entry is not None and entry[0] == key:
                return entry[1]
            if entry is not None and (entry[2] >= self.SYNC_SECONDS or large(entry[1])):
                if name not in self._loading:
                    self._loading.add(name)
                    thread = threading.Thread(target=self._load, args=(name, key, load))
                    thread.daemon = True
                    thread.start()
                return entry[1]
        return self._load(name, key, load)

    def _load(self, name: Any, key: Any, load: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            value = load()
        finally:
            with self._lock:
                self._loading.discard(name)
        with self._lock:
            self._entries[name] = (key, value, time.perf_counter() - start)
        return value


def _load_tables(layout: ExperimentDir) -> tuple[pd.DataFrame, pd.DataFrame]:
    runs, steps = read_summary(layout, steps=True)
    steps = steps.assign(name=steps["name"].astype("category"))  # few names: fast selection
    return runs.reset_index(drop=True), steps


class FileSource:
    """A store root (one directory per experiment) or one experiment directory."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.root = Path(path).absolute()
        if not self.root.is_dir():
            raise MetalabError(f"{path} is not a directory; pass a store root or experiment dir")
        self.label = str(path)
        self._own = ExperimentDir.at(self.root)  # when the path is an experiment itself
        self._cache = _Refresher()
        self._layouts: dict[str, ExperimentDir] = {}
        self._layouts_key: tuple[int, ...] | None = None
        self._not_yet: list[ExperimentDir] = []  # folders without a (readable) compile

    # -- experiments -------------------------------------------------------------------
    def layouts(self) -> dict[str, ExperimentDir]:
        """Experiment ID -> directory, re-listed when the root changes or a folder listed
        before its compile finished gets one (a sweep makes its folder, then compiles)."""
        own = _mtime(self._own.compiled)
        key = (_mtime(self.root), own, *(_mtime(x.compiled) for x in self._not_yet))
        if key == self._layouts_key:
            return self._layouts
        found: dict[str, ExperimentDir] = {}
        not_yet: list[tuple[ExperimentDir, int]] = []  # with its compile's mtime before
        if own:  # an experiment directory (its compile may come after the server started)
            found[_read_json(self._own.root, self._own.compiled)["experiment_id"]] = self._own
        else:
            inside = self.root.resolve()
            for child in sorted(self.root.iterdir()):
                layout = ExperimentDir(child)
                if not child.resolve().is_relative_to(inside) or not child.is_dir():
                    continue  # a symlink out of the served directory is not served
                seen = _mtime(layout.compiled)  # taken first: a compile finishing now shows
                try:
                    found[_read_json(layout.root, layout.compiled)["experiment_id"]] = layout
                except (OSError, ValueError, KeyError, NotFound):
                    not_yet.append((layout, seen))
        self._layouts = found
        self._not_yet = [layout for layout, _ in not_yet]
        self._layouts_key = (key[0], own, *(seen for _, seen in not_yet))
        return found

    def layout(self, experiment_id: str) -> ExperimentDir:
        layout = self.layouts().get(experiment_id)
        if layout is None:
            raise NotFound(f"no experiment {experiment_id!r} here")
        return layout

    def experiments(self) -> list[dict[str, Any]]:
        """Each experiment with done / running / failed / pending counts, last activity
        and the state of a submitted head process."""
        out = []
        for experiment_id, layout in self.layouts().items():
            key = (
                *(_mtime(p) for p in (layout.runs_dir, layout.failed_dir, layout.logs_dir)),
                _mtime(layout.run_table),
                _mtime(layout.head_file),
                int(time.time() // 10),  # liveness of running processes: every 10 s
            )
            load = lambda e=experiment_id, lay=layout: self._experiment(e, lay)  # noqa: E731
            try:
                out.append(self._cache.get(("status", experiment_id), key, load, large=_no))
            except (OSError, ValueError, KeyError, MetalabError) as exc:
                # one broken experiment is listed with its error, the others as usual
                name, _, version = experiment_id.rpartition(":")
                out.append(
                    {
                        "experiment_id": experiment_id,
                        "name": name,
                        "version": version,
                        "directory": layout.root.name,
                        "error": f"cannot read its state: {exc}",
                    }
                )
        return out

    def _experiment(self, experiment_id: str, layout: ExperimentDir) -> dict[str, Any]:
        from metalab_smk.sweep.detached import head_outcome
        from metalab_smk.sweep.status import sweep_status

        status = sweep_status(layout, with_errors=False)
        compiled = _read_json(layout.root, layout.compiled)
        head = layout.head_file
        head_state = None
        outcome = head_outcome(layout) if head.is_file() else None
        if outcome is not None:  # the words of `metalab status`
            info = _read_json(layout.root, head)
            kind = "SLURM job " + str(info.get("job_id")) if info.get("job_id") else "local"
            head_state = f"{kind}: {outcome}"
        activity = max(_mtime(p) for p in (layout.runs_dir, layout.failed_dir, layout.logs_dir))
        return {
            "experiment_id": experiment_id,
            "name": compiled.get("name", experiment_id.rpartition(":")[0]),
            "version": compiled.get("version", experiment_id.rpartition(":")[2]),
            "description": compiled.get("description") or "",
            "directory": layout.root.name,
            "total": status.total,
            "done": status.done,
            "running": status.running,
            "failed": status.failed,
            "pending": status.pending,
            "last_activity_ns": activity or None,
            "head": head_state,
        }

    def warm(self) -> None:
        """Read every experiment's counts, table and steps once (the server does this in
        the background at start, so the first page a person opens is already cached)."""
        try:
            for experiment in self.experiments():
                self.frame(experiment["experiment_id"])
                self.steps(experiment["experiment_id"])
        except (OSError, ValueError, MetalabError):
            pass  # a broken experiment shows its error when its page is opened

    def manifest(self, experiment_id: str) -> dict[str, Any]:
        """What the experiment was compiled from: params spec, seeds, code and git."""
        compiled = read_compiled(self.layout(experiment_id))  # with the param manifest
        return {k: compiled.get(k) for k in MANIFEST_KEYS if k in compiled}

    # -- tables ------------------------------------------------------------------------
    def _frame_key(self, layout: ExperimentDir) -> tuple[int, ...]:
        return tuple(
            _mtime(p)
            for p in (
                layout.summary_runs,
                layout.summary_steps,
                layout.runs_dir,
                layout.failed_dir,
                layout.run_table,
                layout.derived_dir,
            )
        )

    def _tables(self, experiment_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(runs, steps), reloaded when a record or the summary changes (``_Refresher``);
        read as ``read_summary`` reads them: nothing is written into the store."""
        layout = self.layout(experiment_id)
        return self._cache.get(
            ("tables", experiment_id),
            self._frame_key(layout),
            lambda: _load_tables(layout),
            large=lambda tables: len(tables[0]) >= BACKGROUND_ROWS,
        )

    def frame(self, experiment_id: str) -> pd.DataFrame:
        """The runs table (record columns, ``param_*``, metrics, tags)."""
        return self._tables(experiment_id)[0]

    def steps(self, experiment_id: str) -> pd.DataFrame:
        """The stepped metrics (run_id, name, step, value); empty when there are none."""
        return self._tables(experiment_id)[1]

    # -- one run -----------------------------------------------------------------------
    def _run_id(self, layout: ExperimentDir, run_id: str) -> str:
        if not is_run_id(run_id):
            raise NotFound(f"{run_id!r} is not a run ID (16 hex digits)")
        return run_id

    def record(self, experiment_id: str, run_id: str) -> dict[str, Any]:
        layout = self.layout(experiment_id)
        self._run_id(layout, run_id)
        for path in (layout.record(run_id), layout.failed_record(run_id)):
            if path.is_file():
                return _read_json(layout.root, path)
        raise NotFound(f"run {run_id} of {experiment_id} has no record (pending or running)")

    def run_steps(self, experiment_id: str, run_id: str) -> dict[str, list[list[float]]]:
        """Every stepped metric of the run, read from its data files."""
        layout = self.layout(experiment_id)
        record = self.record(experiment_id, run_id)
        out = {}
        for name in record.get("stepped_metrics") or []:
            try:
                out[name] = self._data_file(layout, run_id, name)["data"]
            except (NotFound, OSError, ValueError, KeyError):
                continue
        return out

    def in_progress(self, experiment_id: str) -> list[str]:
        """Run IDs with a ``.partial`` log and no success record: running now, or killed
        (``metalab status`` tells which)."""
        layout = self.layout(experiment_id)
        found = set(layout.partial_logs())
        return sorted(i for i in found - layout.done_ids() if is_run_id(i))

    def log(self, experiment_id: str, run_id: str) -> dict[str, Any]:
        """The run's log (its last 256 KiB), or the partial log of a run in progress
        (when newer)."""
        layout = self.layout(experiment_id)
        self._run_id(layout, run_id)
        partial_log = layout.current_partial_log(run_id)
        candidates = [(layout.log(run_id), False)]
        if partial_log is not None:
            candidates.append((partial_log, True))
            if _mtime(partial_log) > _mtime(layout.log(run_id)):
                candidates.reverse()  # a new attempt is running: its log, not the last one's
        for path, partial in candidates:
            if path.is_file():
                path = _inside(layout.root, path)
                size = path.stat().st_size
                with open(path, "rb") as handle:
                    handle.seek(max(0, size - LOG_TAIL_BYTES))
                    text = handle.read().decode("utf-8", errors="replace")
                return {"text": text, "partial": partial, "truncated": size > LOG_TAIL_BYTES}
        return {"text": "", "partial": False, "truncated": False, "missing": True}

    def artifact_path(self, experiment_id: str, run_id: str, name: str) -> tuple[Path, str]:
        """(path, format) of the artifact ``name`` listed in the run's record."""
        layout = self.layout(experiment_id)
        for descriptor in self.record(experiment_id, run_id).get("artifacts") or []:
            if descriptor.get("name") == name:
                try:
                    path = layout.resolve_inside(str(descriptor.get("uri", "")))
                except StorePathError as exc:
                    raise NotFound(f"artifact {name!r}: {exc}") from None
                return path, str(descriptor.get("format", ""))
        raise NotFound(f"run {run_id} has no artifact {name!r}")

    def data_names(self, experiment_id: str, run_id: str) -> list[str]:
        layout = self.layout(experiment_id)
        directory = layout.results(self._run_id(layout, run_id))
        if not directory.is_dir():
            return []
        return sorted(p.stem for p in directory.glob("*.json"))

    def checkpoint(self, experiment_id: str, run_id: str) -> dict[str, int] | None:
        """Files and bytes of the run's checkpoint directory (None: it keeps none)."""
        layout = self.layout(experiment_id)
        return run_checkpoint(layout, self._run_id(layout, run_id))

    def _data_file(self, layout: ExperimentDir, run_id: str, name: str) -> dict[str, Any]:
        directory = layout.results(self._run_id(layout, run_id))
        listed = {p.stem: p for p in directory.glob("*.json")} if directory.is_dir() else {}
        if name not in listed:
            raise NotFound(f"run {run_id} has no data {name!r}")
        return read_json(_inside(layout.root, listed[name]))

    def data(self, experiment_id: str, run_id: str, name: str) -> Any:
        return self._data_file(self.layout(experiment_id), run_id, name)

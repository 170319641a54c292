"""The dashboard's web app (Starlette): a JSON API over a DataSource plus static files.

Safety: requests name experiments, runs, artifacts and data only by names the source
lists (see ``source.py``); artifacts are previewed for safe formats only (numpy without
pickle, JSON, text, raster images); every response forbids inline scripts (CSP) and
content sniffing, and the front end inserts values as text, never as HTML.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from starlette.applications import Starlette
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from metalab_smk.errors import MetalabError
from metalab_smk.store.upstream import load_array
from metalab_smk.ui import plots
from metalab_smk.ui.axes import log_params
from metalab_smk.ui.query import (
    BadQuery,
    SortCache,
    TableQuery,
    columns_of,
    jsonable,
    run_query,
    view_frame,
)
from metalab_smk.ui.source import DataSource, NotFound
from metalab_smk.ui.sweep import paired, seed_lines, sweep_view
from metalab_smk.ui.versions import other_versions, versions_view

__all__ = ["build_app"]

STATIC = Path(__file__).parent / "static"
IMAGE_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
}
TEXT_FORMATS = {"text", "txt", "csv", "tsv", "md", "log", "yaml", "yml", "toml"}
PREVIEW_BYTES = 200_000
MAX_IN_PROGRESS = 100
ARRAY_ROWS, ARRAY_COLS = 200, 50
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


class _Json(JSONResponse):
    def render(self, content: Any) -> bytes:
        try:  # plot data and pages are plain JSON already: the C encoder alone
            return json.dumps(content, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError):
            return json.dumps(jsonable(content), allow_nan=False, default=str).encode("utf-8")


class _SecurityHeaders:
    """Adds CSP, nosniff and no-referrer to every response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _array_preview(path: Path) -> dict[str, Any]:
    array = load_array(path, mmap_mode="r")  # .npy maps; upstream's .npz is read whole
    if isinstance(array, dict):
        raise ValueError("a dict of arrays")
    view = array
    if view.ndim == 0:
        view = view.reshape(1, 1)
    elif view.ndim == 1:
        view = view.reshape(-1, 1)
    elif view.ndim > 2:
        view = view.reshape(view.shape[0], -1)
    rows = np.asarray(view[:ARRAY_ROWS, :ARRAY_COLS])
    numeric = np.issubdtype(array.dtype, np.number) and array.size > 0
    return {
        "type": "array",
        "shape": list(array.shape),
        "dtype": str(array.dtype),
        "rows": jsonable(rows.tolist()),
        "truncated": bool(view.shape[0] > ARRAY_ROWS or view.shape[1] > ARRAY_COLS),
        "stats": jsonable(
            {
                "min": float(np.nanmin(array)),
                "max": float(np.nanmax(array)),
                "mean": float(np.nanmean(array)),
            }
        )
        if numeric and array.size <= 50_000_000
        else None,
    }


def _text_head(path: Path) -> tuple[str, bool]:
    with open(path, "rb") as handle:
        data = handle.read(PREVIEW_BYTES + 1)
    return data[:PREVIEW_BYTES].decode("utf-8", errors="replace"), len(data) > PREVIEW_BYTES


def artifact_preview(path: Path, fmt: str) -> dict[str, Any]:
    """A preview of a stored artifact, for safe formats only (never unpickles)."""
    fmt = fmt.lower()
    suffix = path.suffix.lstrip(".").lower()
    if not path.is_file():
        return {"type": "none", "reason": "the file is missing"}
    if fmt in ("numpy", "npz") or suffix in ("npy", "npz"):
        try:
            return _array_preview(path)
        except ValueError as exc:  # object arrays need pickle: refused
            return {"type": "none", "reason": f"not previewed: {exc}"}
    if fmt == "json" or suffix == "json":
        text, truncated = _text_head(path)
        if not truncated:
            with contextlib.suppress(ValueError):
                text = json.dumps(json.loads(text), indent=2, sort_keys=True)
        return {"type": "json", "text": text, "truncated": truncated}
    if fmt in IMAGE_TYPES or suffix in IMAGE_TYPES:
        return {"type": "image"}
    if fmt in TEXT_FORMATS or suffix in TEXT_FORMATS:
        text, truncated = _text_head(path)
        return {"type": "text", "text": text, "truncated": truncated}
    return {"type": "none", "reason": f"no preview for format {fmt!r} (only safe formats)"}


class _Dashboard:
    """What the handlers share: the data source, the sort cache, and caches of plot
    responses and of log-uniform params (both per table version)."""

    def __init__(self, source: DataSource) -> None:
        self.source = source
        self.sorter = SortCache()
        self.plot_cache: OrderedDict[tuple[Any, ...], tuple[Any, Any, bytes | memoryview]] = (
            OrderedDict()
        )
        self.scales: dict[str, tuple[Any, set[str]]] = {}

    def logs(self, experiment: str, table: pd.DataFrame) -> set[str]:
        """Params drawn log-uniformly (read from the manifest once per table version)."""
        hit = self.scales.get(experiment)
        if hit is None or hit[0] is not table:
            try:
                found = log_params(self.source.manifest(experiment).get("params"))
            except (OSError, ValueError, MetalabError, NotFound):
                found = set()  # no manifest (an index whose directory is gone): no hint
            self.scales[experiment] = hit = (table, found)
        return hit[1]

    def remember(self, key: tuple[Any, ...], table: Any, steps: Any, response: Response) -> None:
        self.plot_cache[key] = (table, steps, response.body)
        while len(self.plot_cache) > 16:
            self.plot_cache.popitem(last=False)

    def cached(self, kind: str, request: Request, make: Any) -> Response:
        """A response computed once per table version and query."""
        table = self.source.frame(eid(request))
        key = (kind, eid(request), id(table), tuple(sorted(request.query_params.items())))
        hit = self.plot_cache.get(key)
        if hit is not None and hit[0] is table:
            return Response(hit[2], media_type="application/json")
        response = _Json(make(view_frame(table, table_query(request), self.sorter)))
        self.remember(key, table, None, response)
        return response


def _state(request: Request) -> _Dashboard:
    return request.app.state.dashboard


def _source(request: Request) -> DataSource:
    return _state(request).source


def table_query(request: Request) -> TableQuery:
    return TableQuery.from_params(request.query_params)


def eid(request: Request) -> str:
    return request.path_params["experiment"]


async def index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache"})


async def experiments(request: Request) -> Response:
    source = _source(request)
    return _Json({"source": source.label, "experiments": source.experiments()})


async def columns(request: Request) -> Response:
    source = _source(request)
    frame = source.frame(eid(request))
    kinds = columns_of(frame)
    steps = source.steps(eid(request))
    kinds["stepped"] = sorted(steps["name"].unique().tolist()) if len(steps) else []
    kinds["all"] = list(frame.columns)
    return _Json(kinds)


async def manifest(request: Request) -> Response:
    source = _source(request)
    return _Json(source.manifest(eid(request)))


async def runs(request: Request) -> Response:
    source = _source(request)
    return _Json(
        run_query(source.frame(eid(request)), table_query(request), _state(request).sorter)
    )


async def export(request: Request) -> Response:
    source = _source(request)
    query = table_query(request)
    view = view_frame(source.frame(eid(request)), query, _state(request).sorter)
    if query.columns:
        view = view[[c for c in ["run_id", *query.columns] if c in view.columns]]
        view = view.loc[:, ~view.columns.duplicated()]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", eid(request))  # a safe download name
    fmt = request.query_params.get("format", "csv")
    if fmt == "parquet":
        buffer = io.BytesIO()
        view.to_parquet(buffer, index=False)
        body, media, ext = buffer.getvalue(), "application/vnd.apache.parquet", "parquet"
    elif fmt == "csv":
        body, media, ext = view.to_csv(index=False).encode(), "text/csv", "csv"
    else:
        raise BadQuery("format must be csv or parquet")
    disposition = f'attachment; filename="{name}.{ext}"'
    return Response(body, media_type=media, headers={"content-disposition": disposition})


async def run_detail(request: Request) -> Response:
    source = _source(request)
    experiment, run_id = eid(request), request.path_params["run_id"]
    try:
        record = source.record(experiment, run_id)
    except NotFound:
        if run_id not in source.in_progress(experiment):
            raise
        return _Json({"record": None, "in_progress": True, "steps": {}, "data": []})
    return _Json(
        {
            "record": record,
            "steps": source.run_steps(experiment, run_id),
            "data": source.data_names(experiment, run_id),
            "checkpoint": source.checkpoint(experiment, run_id),
        }
    )


async def in_progress(request: Request) -> Response:
    source = _source(request)
    runs = source.in_progress(eid(request))
    return _Json({"total": len(runs), "runs": runs[:MAX_IN_PROGRESS]})


async def run_log(request: Request) -> Response:
    source = _source(request)
    return _Json(source.log(eid(request), request.path_params["run_id"]))


async def run_data(request: Request) -> Response:
    source = _source(request)
    p = request.path_params
    content = source.data(eid(request), p["run_id"], p["name"])
    return _Json({"text": json.dumps(jsonable(content), indent=2, default=str)})


async def artifact(request: Request) -> Response:
    source = _source(request)
    p = request.path_params
    path, fmt = source.artifact_path(eid(request), p["run_id"], p["name"])
    return _Json({"name": p["name"], "format": fmt, **artifact_preview(path, fmt)})


async def artifact_raw(request: Request) -> Response:
    source = _source(request)
    p = request.path_params
    path, fmt = source.artifact_path(eid(request), p["run_id"], p["name"])
    kind = IMAGE_TYPES.get(fmt.lower()) or IMAGE_TYPES.get(path.suffix.lstrip(".").lower())
    if kind is None or not path.is_file():
        raise NotFound(f"artifact {p['name']!r} is not an image")
    return Response(
        path.read_bytes(),
        media_type=kind,
        headers={"content-security-policy": "sandbox", "cache-control": "no-cache"},
    )


async def compare(request: Request) -> Response:
    source = _source(request)
    ids = [i for i in request.query_params.get("ids", "").split(",") if i][:20]
    if len(ids) < 2:
        raise BadQuery("compare needs at least two run IDs (ids=a,b)")
    records = [source.record(eid(request), run_id) for run_id in ids]
    steps = [source.run_steps(eid(request), run_id) for run_id in ids]
    return _Json({**plots.compare(records), "steps": plots.compare_steps(ids, steps)})


async def plot(request: Request) -> Response:
    """Plot data, cached per table version and query (live polling of an unchanged
    sweep costs nothing)."""
    state = _state(request)
    table, steps = state.source.frame(eid(request)), state.source.steps(eid(request))
    key = (eid(request), id(table), id(steps), tuple(sorted(request.query_params.items())))
    hit = state.plot_cache.get(key)
    if hit is not None and hit[0] is table and hit[1] is steps:
        return Response(hit[2], media_type="application/json")
    response = _Json(_plot_data(request, table, steps))
    state.remember(key, table, steps, response)
    return response


def _plot_data(request: Request, table: pd.DataFrame, steps: pd.DataFrame) -> dict[str, Any]:
    q = request.query_params
    frame = view_frame(table, table_query(request), _state(request).sorter)
    kind = q.get("kind", "xy")
    if kind == "xy":
        data = plots.xy(
            frame,
            q.get("x", ""),
            q.get("y", ""),
            group=q.get("group", ""),
            facet=q.get("facet", ""),
            agg=q.get("agg", "mean"),
            err=q.get("err", "ci95"),
            log_params=_state(request).logs(eid(request), table),
        )
    elif kind == "hist":
        data = plots.histogram(
            frame, q.get("y", ""), group=q.get("group", ""), bins=int(q.get("bins") or 20)
        )
    elif kind == "steps":
        data = plots.stepped(
            frame,
            steps,
            q.get("y", ""),
            group=q.get("group", ""),
            mode=q.get("mode", "mean"),
            err=q.get("err", "ci95"),
            facet=q.get("facet", ""),
            smoothing=float(q.get("smooth") or 0),
        )
    else:
        raise BadQuery("kind must be xy, hist or steps")
    return data


async def sweep(request: Request) -> Response:
    """Case means, importance with the seed-noise share (the sweep view)."""
    source = _source(request)
    metric = request.query_params.get("metric", "")
    logged = _state(request).logs(eid(request), source.frame(eid(request)))
    return _state(request).cached("sweep", request, lambda frame: sweep_view(frame, metric, logged))


async def sweep_seeds(request: Request) -> Response:
    """One parallel-coordinate line per seed replicate (asked for on demand)."""
    metric = request.query_params.get("metric", "")
    return _state(request).cached("seeds", request, lambda frame: seed_lines(frame, metric))


async def sweep_compare(request: Request) -> Response:
    """Paired comparison of cases ``a`` and ``b`` on their shared seeds."""
    q = request.query_params
    return _state(request).cached(
        "pair", request, lambda frame: paired(frame, q.get("metric", ""), q["a"], q["b"])
    )


async def versions(request: Request) -> Response:
    """This version against another version of the experiment, case by case."""
    source = _source(request)
    key, q = eid(request), request.query_params
    source.frame(key)  # an unknown experiment is a 404
    others = other_versions(source.experiments(), key)
    other = q.get("other") or (others[0] if others else "")
    if not other:
        return _Json({"this": key, "other": None, "versions": [], "rows": []})
    if other not in others:
        raise BadQuery(f"{other!r} is not another version of {key}; versions: {others}")
    metric = q.get("metric", "")
    view = versions_view(key, source.frame(key), other, source.frame(other), metric)
    return _Json({**view, "versions": others})


async def value_error(request: Request, exc: Exception) -> Response:
    return _Json({"error": f"bad request: {exc}"}, status_code=400)


async def not_found(request: Request, exc: Exception) -> Response:
    return _Json({"error": str(exc)}, status_code=404)


async def bad_request(request: Request, exc: Exception) -> Response:
    return _Json({"error": str(exc)}, status_code=400)


async def api_404(request: Request) -> Response:
    return _Json({"error": "no such API endpoint"}, status_code=404)


EXP = "/api/experiments/{experiment}"
RUN = EXP + "/runs/{run_id}"
ROUTES = [
    Route("/", index),
    Route("/favicon.ico", lambda request: Response(status_code=204)),
    Route("/api/experiments", experiments),
    Route(EXP + "/columns", columns),
    Route(EXP + "/runs", runs),
    Route(EXP + "/manifest", manifest),
    Route(EXP + "/in_progress", in_progress),
    Route(EXP + "/export", export),
    Route(EXP + "/plot", plot),
    Route(EXP + "/compare", compare),
    Route(EXP + "/sweep", sweep),
    Route(EXP + "/sweep/compare", sweep_compare),
    Route(EXP + "/sweep/seeds", sweep_seeds),
    Route(EXP + "/versions", versions),
    Route(RUN, run_detail),
    Route(RUN + "/log", run_log),
    Route(RUN + "/data/{name}", run_data),
    Route(RUN + "/artifacts/{name}", artifact),
    Route(RUN + "/artifacts/{name}/raw", artifact_raw),
    Route("/api/{rest:path}", api_404),
    Mount("/static", StaticFiles(directory=STATIC), name="static"),
]
ERROR_HANDLERS: dict[Any, Any] = {
    NotFound: not_found,
    BadQuery: bad_request,
    MetalabError: bad_request,
    KeyError: bad_request,
    ValueError: value_error,
    pd.errors.ParserError: value_error,
}


def build_app(source: DataSource, allowed_hosts: list[str] | None = None) -> Starlette:
    """The dashboard app over ``source``; requests must name this machine in their Host
    header (localhost, 127.0.0.1 or ``allowed_hosts``, e.g. the ``--host`` address)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        warm = getattr(source, "warm", None)
        if warm is not None:
            threading.Thread(target=warm, name="metalab-ui-warm", daemon=True).start()
        yield

    app = Starlette(routes=ROUTES, exception_handlers=ERROR_HANDLERS, lifespan=lifespan)
    app.state.dashboard = _Dashboard(source)
    app.add_middleware(_SecurityHeaders)
    # DNS rebinding: a web page cannot reach this server under a name of its own
    hosts = ["127.0.0.1", "localhost", "::1", "[::1]", "testserver", *(allowed_hosts or [])]
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts)
    return app

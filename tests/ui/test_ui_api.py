"""The dashboard's JSON API over a real store (one sweep run by Snakemake), with
Starlette's TestClient: tables, run detail, artifacts, plots, export, and safety."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("starlette", reason="the dashboard needs the 'ui' extra")
pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx")
from starlette.testclient import TestClient
from uistore import XSS, build_store

from metalab_smk.results.aggregate import aggregate
from metalab_smk.store.jsonio import atomic_write_json, read_json
from metalab_smk.store.layout import ExperimentDir
from metalab_smk.ui.server import build_app
from metalab_smk.ui.source import FileSource

pytestmark = pytest.mark.integration
EID = "uidemo:1"
API = "/api/experiments/uidemo:1"


def _tree(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("uistore"))


@pytest.fixture(scope="module")
def client(store: Path):
    before = _tree(store)
    with TestClient(build_app(FileSource(store))) as client:
        yield client
    assert _tree(store) == before, "the dashboard wrote into the store"


def _runs(client: TestClient, **params: str) -> dict:
    response = client.get(f"{API}/runs", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _by_status(client: TestClient, status: str) -> list[str]:
    return [row[0] for row in _runs(client, status=status, limit="100")["rows"]]


def test_experiments_list_counts(client: TestClient) -> None:
    data = client.get("/api/experiments").json()
    (exp,) = data["experiments"]
    assert exp["experiment_id"] == EID
    assert (exp["total"], exp["done"], exp["failed"], exp["pending"]) == (18, 15, 3, 0)
    assert exp["last_activity_ns"] > 0


def test_runs_table_pages_sorts_filters_and_searches(client: TestClient) -> None:
    page = _runs(client, limit="5", offset="5")
    assert (page["total"], page["offset"], len(page["rows"])) == (18, 5, 5)
    assert page["columns"][:4] == ["run_id", "status", "param_label", "param_lr"]
    ordered = _runs(client, sort="score", desc="1", limit="100")
    scores = [r[ordered["columns"].index("score")] for r in ordered["rows"]]
    present = [s for s in scores if s is not None]
    assert present == sorted(present, reverse=True) and scores[-3:] == [None] * 3
    lr = _runs(client, filter=json.dumps([["param_lr", "=", "0.1"]]))
    assert lr["total"] == 6 and lr["all"] == 18
    both = _runs(client, filter=json.dumps([["param_label", "~", "SCRIPT"], ["score", ">", "0.5"]]))
    assert both["total"] == 3
    assert _runs(client, status="failed")["total"] == 3
    run_id = page["rows"][0][0]
    found = _runs(client, q=run_id[:6])
    assert run_id in [r[0] for r in found["rows"]]
    assert all(r[0].startswith(run_id[:6]) for r in found["rows"])
    picked = _runs(client, columns="param_lr,loss", limit="1")
    assert picked["columns"] == ["run_id", "param_lr", "loss"]


def test_bad_table_queries_are_one_line_400s(client: TestClient) -> None:
    for params in (
        {"sort": "nope"},
        {"filter": json.dumps([["nope", "=", "1"]])},
        {"filter": json.dumps([["score", "=", "abc"]])},
        {"filter": json.dumps([["score", "like", "1"]])},
        {"filter": "not json"},
        {"limit": "many"},
    ):
        response = client.get(f"{API}/runs", params=params)
        assert response.status_code == 400, params
        assert "\n" not in response.json()["error"]


def test_run_detail_log_data_and_failure(client: TestClient) -> None:
    ok = _by_status(client, "success")[0]
    detail = client.get(f"{API}/runs/{ok}").json()
    record = detail["record"]
    assert record["params_resolved"]["label"] in (XSS, "plain")
    assert set(record["metrics"]) == {"loss", "score"}
    assert record["seed"]["root_seed"] == 7
    assert record["provenance"]["python_version"]
    assert [s for s, _ in detail["steps"]["loss"]] == list(range(10))
    assert "history" in detail["data"]
    history = json.loads(client.get(f"{API}/runs/{ok}/data/history").json()["text"])
    assert history["data"] == {"steps": [0, 1, 2]}
    log = client.get(f"{API}/runs/{ok}/log").json()
    assert "training lr=" in log["text"] and not log["partial"]
    bad = _by_status(client, "failed")[0]
    error = client.get(f"{API}/runs/{bad}").json()["record"]["error"]
    assert error["type"] == "ValueError" and "diverged" in error["message"]
    assert "Traceback" in error["traceback"]
    assert "diverged" in client.get(f"{API}/runs/{bad}/log").json()["text"]


def test_artifact_previews(client: TestClient) -> None:
    ok = _by_status(client, "success")[0]
    weights = client.get(f"{API}/runs/{ok}/artifacts/weights").json()
    assert weights["type"] == "array" and weights["shape"] == [3, 4]
    assert weights["rows"][2] == [8.0, 9.0, 10.0, 11.0] and weights["stats"]["max"] == 11.0
    config = client.get(f"{API}/runs/{ok}/artifacts/config").json()
    assert config["type"] == "json" and json.loads(config["text"])["lr"] in (0.1, 0.05, 0.01)
    assert client.get(f"{API}/runs/{ok}/artifacts/picture").json()["type"] == "image"
    raw = client.get(f"{API}/runs/{ok}/artifacts/picture/raw")
    assert raw.status_code == 200 and raw.headers["content-type"] == "image/png"
    assert raw.content.startswith(b"\x89PNG")
    assert client.get(f"{API}/runs/{ok}/artifacts/weights/raw").status_code == 404


def test_plots_use_replicate_statistics(client: TestClient, store: Path) -> None:
    data = client.get(
        f"{API}/plot", params={"x": "param_lr", "y": "score", "group": "param_label"}
    ).json()
    (panel,) = data["panels"]
    series = {s["name"]: s["points"] for s in panel["series"]}
    assert set(series) == {f"label={XSS}", "label=plain"}  # legends name the param
    expected = aggregate(
        FileSource(store).frame(EID), metrics=["score"], by=["param_label", "param_lr"]
    )
    row = expected[(expected.param_label == "plain") & (expected.param_lr == 0.1)].iloc[0]
    point = next(p for p in series["label=plain"] if p[0] == 0.1)
    assert point[1] == pytest.approx(row.score_mean)
    assert point[3] - point[1] == pytest.approx(row.score_ci95) and point[4] == 3
    faceted = client.get(
        f"{API}/plot", params={"x": "param_lr", "y": "score", "facet": "param_label"}
    ).json()
    assert len(faceted["panels"]) == 2
    hist = client.get(f"{API}/plot", params={"kind": "hist", "y": "score", "bins": "5"}).json()
    assert len(hist["edges"]) == 6 and sum(hist["series"][0]["counts"]) == 15
    steps = client.get(
        f"{API}/plot", params={"kind": "steps", "y": "loss", "group": "param_lr"}
    ).json()
    (panel,) = steps["panels"]
    assert len(panel["series"]) == 3 and len(panel["series"][0]["points"]) == 10
    assert [s["name"] for s in panel["series"]] == ["lr=0.01", "lr=0.05", "lr=0.1"]
    each = client.get(f"{API}/plot", params={"kind": "steps", "y": "loss", "mode": "runs"}).json()
    assert len(each["panels"][0]["series"]) == 15
    faceted = client.get(
        f"{API}/plot",
        params={
            "kind": "steps",
            "y": "loss",
            "group": "param_lr",
            "facet": "param_label",
            "mode": "runs",
            "smooth": "0.6",
        },
    ).json()
    assert [p["title"] for p in faceted["panels"]] == [
        "label=<script>alert(1)</script>",
        "label=plain",
    ]
    colors = {s["name"]: s["color"] for p in faceted["panels"] for s in p["series"]}
    assert sorted(colors) == ["lr=0.01", "lr=0.05", "lr=0.1"]  # one colour per lr
    filtered = client.get(
        f"{API}/plot",
        params={"kind": "hist", "y": "score", "filter": json.dumps([["param_lr", "=", "0.1"]])},
    ).json()
    assert sum(filtered["series"][0]["counts"]) == 6


def test_compare_highlights_differences(client: TestClient) -> None:
    ids = _by_status(client, "success")[:2] + _by_status(client, "failed")[:1]
    data = client.get(f"{API}/compare", params={"ids": ",".join(ids)}).json()
    rows = {(r["section"], r["key"]): r for r in data["rows"]}
    assert data["run_ids"] == ids
    assert rows[("run", "status")]["differs"]
    assert rows[("run", "status")]["values"] == ["success", "success", "failed"]
    assert not rows[("provenance", "python_version")]["differs"]
    (loss,) = data["steps"]  # the failed run has no curve
    assert loss["name"] == "loss" and [s["name"] for s in loss["panels"][0]["series"]] == ids[:2]
    assert client.get(f"{API}/compare", params={"ids": ids[0]}).status_code == 400


def test_export_current_view(client: TestClient) -> None:
    view = {"filter": json.dumps([["param_lr", "=", "0.1"]]), "sort": "score"}
    csv = client.get(f"{API}/export", params={**view, "format": "csv"})
    assert csv.status_code == 200
    assert csv.headers["content-disposition"] == 'attachment; filename="uidemo_1.csv"'
    frame = pd.read_csv(io.StringIO(csv.text))
    assert len(frame) == 6 and (frame["param_lr"] == 0.1).all()
    assert frame["score"].tolist() == sorted(frame["score"].tolist())
    parquet = client.get(
        f"{API}/export", params={**view, "format": "parquet", "columns": "param_lr,score"}
    )
    table = pd.read_parquet(io.BytesIO(parquet.content))
    assert list(table.columns) == ["run_id", "param_lr", "score"] and len(table) == 6


def test_security_headers_and_static(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and '<script type="module"' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("style-src")[0]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert client.get("/static/vendor/echarts.min.js").status_code == 200


TRAVERSALS = [
    "/api/experiments/..%2F..%2Fetc/runs",
    "/api/experiments/../../etc/passwd",
    "/api/experiments/uidemo:2/runs",
    f"{API}/runs/..%2F..%2F.metalab%2Fcompiled",
    f"{API}/runs/0000000000000000",
    f"{API}/runs/....%2F....%2Fcompiled/log",
    f"{API}/runs/%2Fetc%2Fpasswd/log",
    "/static/..%2Fserver.py",
    "/static/../server.py",
    "/static/%2e%2e/source.py",
    "/static/vendor/..%2F..%2Fsource.py",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_no_path_outside_is_readable(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code in (400, 404), (path, response.status_code)
    assert "import" not in response.text and "root:" not in response.text


def test_names_from_requests_cannot_escape(client: TestClient) -> None:
    ok = _by_status(client, "success")[0]
    for name in ("..%2F..%2F..%2Fetc%2Fpasswd", "..%2Fweights", "%2Fetc%2Fpasswd", "...."):
        for kind in ("artifacts", "data"):
            response = client.get(f"{API}/runs/{ok}/{kind}/{name}")
            assert response.status_code == 404, (kind, name)
            assert "root:" not in response.text
        raw = client.get(f"{API}/runs/{ok}/artifacts/{name}/raw")
        assert raw.status_code == 404


def test_tampered_records_cannot_read_outside_or_unpickle(store: Path, tmp_path: Path) -> None:
    """A record whose artifact URIs point outside, through a symlink, or at a pickle."""
    copy = tmp_path / "store"
    shutil.copytree(store, copy, symlinks=True)
    (tmp_path / "secret.txt").write_text("top secret")
    layout = FileSource(copy).layout(EID)
    run_id = next(r for r in FileSource(copy).frame(EID).run_id if layout.record(r).is_file())
    record = read_json(layout.record(run_id))
    marker = tmp_path / "pwned"
    pickle_path = layout.artifacts(run_id) / "evil.pkl"
    # a pickle that would create the marker file when loaded
    pickle_path.write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    os.symlink(tmp_path / "secret.txt", layout.artifacts(run_id) / "link.txt")
    record["artifacts"] += [
        {"name": "outside", "format": "text", "uri": "../secret.txt", "kind": "file"},
        {"name": "absolute", "format": "text", "uri": str(tmp_path / "secret.txt")},
        {"name": "link", "format": "text", "uri": f"artifacts/{run_id}/link.txt"},
        {"name": "evil", "format": "pickle", "uri": f"artifacts/{run_id}/evil.pkl"},
    ]
    atomic_write_json(layout.record(run_id), record)
    with TestClient(build_app(FileSource(copy))) as client:
        base = f"{API}/runs/{run_id}/artifacts"
        for name in ("outside", "absolute", "link"):
            response = client.get(f"{base}/{name}")
            assert response.status_code == 404 and "top secret" not in response.text, name
        evil = client.get(f"{base}/evil").json()
        assert evil["type"] == "none" and "format" in evil["reason"]
        assert client.get(f"{base}/evil/raw").status_code == 404
    assert not marker.exists()


def test_live_changes_show_without_restart(store: Path, tmp_path: Path) -> None:
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    source = FileSource(copy)
    with TestClient(build_app(source)) as client:
        assert _runs(client)["total"] == 18
        failed = _by_status(client, "failed")[0]
        source.layout(EID).failed_record(failed).unlink()  # as if the run is retried
        assert _runs(client)["total"] == 17
        counts = client.get("/api/experiments").json()["experiments"][0]
        assert (counts["failed"], counts["pending"]) == (2, 1)


def test_an_experiment_listed_before_its_compile_shows_once_compiled(
    store: Path, tmp_path: Path
) -> None:
    """A sweep makes its folder, then compiles into it: a listing in between must not
    hide the experiment for good (the folder's creation is the root's last change)."""
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    compiled = ExperimentDir(copy / "uidemo+1").compiled
    held = compiled.read_bytes()
    compiled.unlink()  # the moment between the folder and its compile
    root_changed = copy.stat().st_mtime_ns
    source = FileSource(copy)
    with TestClient(build_app(source)) as client:
        assert client.get("/api/experiments").json()["experiments"] == []
        compiled.write_bytes(held)
        assert copy.stat().st_mtime_ns == root_changed  # nothing in the root changed
        listed = client.get("/api/experiments").json()["experiments"]
        assert [e["experiment_id"] for e in listed] == [EID]


def test_an_experiment_served_alone_before_its_compile_shows_once_compiled(
    store: Path, tmp_path: Path
) -> None:
    """`metalab ui DIR` on an experiment directory whose compile has not finished."""
    copy = tmp_path / "exp"
    shutil.copytree(store / "uidemo+1", copy)
    compiled = ExperimentDir(copy).compiled
    held = compiled.read_bytes()
    compiled.unlink()
    source = FileSource(copy)
    assert source.layouts() == {}
    compiled.write_bytes(held)
    assert list(source.layouts()) == [EID]
    assert source.layout(EID).root == ExperimentDir.at(copy).root


def test_derived_metrics_and_manifest(store: Path, tmp_path: Path) -> None:
    from metalab_smk.results.results import load_results

    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    results = load_results(copy, experiment_id=EID)
    results.successful.compute_derived({"double": lambda run: 2 * run.metrics["score"]})
    with TestClient(build_app(FileSource(copy))) as client:
        assert "derived_double" in client.get(f"{API}/columns").json()["metrics"]
        page = _runs(client, columns="score,derived_double", sort="derived_double", limit="100")
        rows = [r for r in page["rows"] if r[1] is not None]
        assert len(rows) == 15 and all(r[2] == pytest.approx(2 * r[1]) for r in rows)
        top = _runs(client, filter=json.dumps([["derived_double", ">", "1.5"]]))
        assert 0 < top["total"] < 15
        manifest = client.get(f"{API}/manifest").json()
        assert manifest["n_runs"] == 18 and manifest["replicates"] == 3
        assert manifest["params"]["spec"]["lr"] == [0.1, 0.05, 0.01]


def test_foreign_host_header_is_refused(client: TestClient) -> None:
    """DNS rebinding: a page served under another name cannot read the API."""
    response = client.get("/api/experiments", headers={"host": "evil.example:8000"})
    assert response.status_code == 400
    assert client.get("/api/experiments", headers={"host": "127.0.0.1:8000"}).status_code == 200


class _MemorySource:
    """A DataSource over tables in memory: what a database-backed index would provide."""

    label = "memory"

    def __init__(self, runs: pd.DataFrame, record: dict) -> None:
        self.runs, self.one = runs, record

    def experiments(self) -> list[dict]:
        return [{"experiment_id": "mem:1", "name": "mem", "version": "1", "total": len(self.runs)}]

    def _check(self, experiment_id: str, run_id: str | None = None) -> None:
        from metalab_smk.ui.source import NotFound

        if experiment_id != "mem:1" or (run_id is not None and run_id != self.one["run_id"]):
            raise NotFound("not here")

    def frame(self, experiment_id: str) -> pd.DataFrame:
        self._check(experiment_id)
        return self.runs

    def steps(self, experiment_id: str) -> pd.DataFrame:
        return pd.DataFrame(columns=["run_id", "name", "step", "value"])

    def manifest(self, experiment_id: str) -> dict:
        return {"experiment_id": experiment_id}

    def record(self, experiment_id: str, run_id: str) -> dict:
        self._check(experiment_id, run_id)
        return self.one

    def run_steps(self, experiment_id: str, run_id: str) -> dict:
        return {}

    def log(self, experiment_id: str, run_id: str) -> dict:
        return {"text": "from the index", "partial": False, "truncated": False}

    def artifact_path(self, experiment_id: str, run_id: str, name: str):
        from metalab_smk.ui.source import NotFound

        raise NotFound(name)

    def checkpoint(self, experiment_id: str, run_id: str) -> None:
        return None

    def data_names(self, experiment_id: str, run_id: str) -> list[str]:
        return []

    def in_progress(self, experiment_id: str) -> list[str]:
        return []

    def data(self, experiment_id: str, run_id: str, name: str):
        from metalab_smk.ui.source import NotFound

        raise NotFound(name)


def test_another_data_source_serves_the_same_api(store: Path) -> None:
    """The seam for the database index: the app needs only the DataSource methods."""
    files = FileSource(store)
    runs = files.frame(EID).assign(experiment_id="mem:1")
    ok = runs.loc[runs["status"] == "success", "run_id"].iloc[0]
    source = _MemorySource(runs, files.record(EID, ok))
    with TestClient(build_app(source)) as client:
        base = "/api/experiments/mem:1"
        assert client.get("/api/experiments").json()["source"] == "memory"
        assert client.get(f"{base}/runs", params={"status": "failed"}).json()["total"] == 3
        plot = client.get(f"{base}/plot", params={"x": "param_lr", "y": "score"}).json()
        assert len(plot["panels"][0]["series"][0]["points"]) == 3
        assert client.get(f"{base}/runs/{ok}/log").json()["text"] == "from the index"
        assert client.get(f"{base}/runs/{ok}").json()["record"]["run_id"] == ok
        assert client.get(f"{base}/runs/0123456789abcdef").status_code == 404


BAD_EXPERIMENTS = ["..%2F..%2Fetc", "..", "uidemo+1", "%2Fetc%2Fpasswd", "uidemo:1%00"]
BAD_RUNS = ["..%2F..%2Fcompiled", "..", "%2Fetc%2Fpasswd", "6d57ef012412d3d4%2F..", "ABCDEF"]


@pytest.mark.parametrize("bad", BAD_EXPERIMENTS)
def test_every_experiment_endpoint_refuses_unknown_names(client: TestClient, bad: str) -> None:
    for tail in ("columns", "runs", "manifest", "export", "plot?x=a&y=b", "compare?ids=a,b"):
        response = client.get(f"/api/experiments/{bad}/{tail}")
        assert response.status_code in (400, 404), (bad, tail, response.status_code)
        assert "root:" not in response.text


@pytest.mark.parametrize("bad", BAD_RUNS)
def test_every_run_endpoint_refuses_unknown_names(client: TestClient, bad: str) -> None:
    for tail in ("", "/log", "/data/history", "/artifacts/weights", "/artifacts/picture/raw"):
        response = client.get(f"{API}/runs/{bad}{tail}")
        assert response.status_code in (400, 404), (bad, tail, response.status_code)
    compare = client.get(f"{API}/compare", params={"ids": f"{bad},{bad}"})
    assert compare.status_code == 404


def test_runs_in_progress_and_their_partial_log(store: Path, tmp_path: Path) -> None:
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    source = FileSource(copy)
    layout = source.layout(EID)
    run_id = sorted(layout.done_ids())[0]
    layout.record(run_id).unlink()  # as while the run executes: a .partial log, no record
    layout.partial_log(run_id, os.getpid()).write_text("# metalab run {}\nstep 3 of 10\n")
    with TestClient(build_app(source)) as client:
        assert client.get(f"{API}/in_progress").json() == {"total": 1, "runs": [run_id]}
        detail = client.get(f"{API}/runs/{run_id}").json()
        assert detail["record"] is None and detail["in_progress"]
        log = client.get(f"{API}/runs/{run_id}/log").json()
        assert log["partial"] and "step 3 of 10" in log["text"]
        pending = sorted(set(layout.read_run_ids()) - layout.done_ids() - layout.failed_ids())
        other = next(r for r in pending if r != run_id) if len(pending) > 1 else "0" * 16
        assert client.get(f"{API}/runs/{other}").status_code == 404


def test_run_detail_names_its_checkpoint_and_never_follows_a_link(
    store: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    layout = ExperimentDir.at(copy / "uidemo+1")
    kept, linked, other = sorted(layout.done_ids())[:3]
    layout.checkpoint(kept).mkdir(parents=True)
    (layout.checkpoint(kept) / "model.pt").write_bytes(b"w" * 1000)
    (layout.checkpoint(kept) / "step.txt").write_text("12")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s" * 50)
    layout.checkpoint(linked).symlink_to(outside)
    with TestClient(build_app(FileSource(copy))) as client:
        detail = client.get(f"{API}/runs/{kept}").json()
        assert detail["checkpoint"] == {"files": 2, "bytes": 1002}
        assert client.get(f"{API}/runs/{linked}").json()["checkpoint"] is None
        assert client.get(f"{API}/runs/{other}").json()["checkpoint"] is None

"""``metalab ui`` over several stores: given as several PATHs, or found below a directory
(bounded, no hidden directories, no symlink out or loop), with the same experiment ID in
two stores kept apart, every endpoint working per store, and nothing outside the served
roots readable. Two real sweeps (real Snakemake), Starlette's TestClient."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the dashboard needs the 'ui' extra")
pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx")
from starlette.testclient import TestClient
from uistore import XSS, build_store

from metalab_smk.cli import main as cli_main
from metalab_smk.errors import MetalabError
from metalab_smk.store.jsonio import atomic_write_json, read_json
from metalab_smk.ui.open import open_source
from metalab_smk.ui.server import build_app
from metalab_smk.ui.source import FileSource
from metalab_smk.ui.stores import StoreSet, discover_stores

pytestmark = pytest.mark.integration
EID = "uidemo:1"
ALPHA = "/api/experiments/alpha-runs@uidemo:1"
BETA = "/api/experiments/beta-runs@uidemo:1"


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``projects/alpha/runs`` (18 runs, lr 0.1/0.05/0.01) and ``projects/beta/runs``
    (12 runs, lr 0.2/0.3): the same experiment ID ``uidemo:1`` in both."""
    base = tmp_path_factory.mktemp("uistores")
    build_store(base / "projects" / "alpha")
    build_store(base / "projects" / "beta", lrs=(0.2, 0.3))
    return base / "projects"


@pytest.fixture(scope="module")
def client(projects: Path):
    source = open_source(projects)
    assert isinstance(source, StoreSet)
    with TestClient(build_app(source)) as client:
        yield client


def _runs(client: TestClient, api: str) -> dict:
    response = client.get(f"{api}/runs", params={"limit": "100"})
    assert response.status_code == 200, response.text
    return response.json()


def test_discovery_lists_every_experiment_with_its_store(client: TestClient) -> None:
    data = client.get("/api/experiments").json()
    keys = [e["key"] for e in data["experiments"]]
    assert keys == ["alpha-runs@uidemo:1", "beta-runs@uidemo:1"]
    alpha, beta = data["experiments"]
    assert alpha["experiment_id"] == beta["experiment_id"] == EID  # same ID, two experiments
    assert alpha["store"].endswith(os.path.join("projects", "alpha", "runs"))
    assert beta["store"].endswith(os.path.join("projects", "beta", "runs"))
    assert (alpha["total"], alpha["done"], alpha["failed"]) == (18, 15, 3)
    assert (beta["total"], beta["done"], beta["failed"]) == (12, 12, 0)


def test_every_page_works_for_each_store(client: TestClient) -> None:
    alpha, beta = _runs(client, ALPHA), _runs(client, BETA)
    assert (alpha["total"], beta["total"]) == (18, 12)
    lr = beta["columns"].index("param_lr")
    assert {row[lr] for row in beta["rows"]} == {0.2, 0.3}
    assert {row[alpha["columns"].index("param_lr")] for row in alpha["rows"]} == {0.1, 0.05, 0.01}
    ok = beta["rows"][0][0]
    detail = client.get(f"{BETA}/runs/{ok}").json()
    assert detail["record"]["params_resolved"]["lr"] in (0.2, 0.3)
    assert [s for s, _ in detail["steps"]["loss"]] == list(range(10))
    assert "training lr=0." in client.get(f"{BETA}/runs/{ok}/log").json()["text"]
    assert client.get(f"{BETA}/runs/{ok}/artifacts/weights").json()["shape"] == [3, 4]
    assert client.get(f"{BETA}/runs/{ok}/data/history").status_code == 200
    manifest = client.get(f"{BETA}/manifest").json()
    assert manifest["experiment_id"] == EID and manifest["store"].endswith("runs")
    columns = client.get(f"{BETA}/columns").json()
    assert "param_lr" in columns["params"] and "loss" in columns["stepped"]
    plot = client.get(f"{BETA}/plot", params={"x": "param_lr", "y": "score"})
    assert plot.status_code == 200, plot.text
    csv = client.get(f"{BETA}/export", params={"format": "csv"})
    assert csv.status_code == 200 and csv.text.count("\n") == 13  # header + 12 runs
    assert 'filename="beta-runs_uidemo_1.csv"' in csv.headers["content-disposition"]
    other = beta["rows"][1][0]
    compare = client.get(f"{BETA}/compare", params={"ids": f"{ok},{other}"})
    assert compare.status_code == 200, compare.text
    assert client.get(f"{BETA}/in_progress").json() == {"total": 0, "runs": []}
    # a run of one store is not a run of the other
    assert client.get(f"{ALPHA}/runs/{ok}").status_code == 404
    labels = {row[alpha["columns"].index("param_label")] for row in alpha["rows"]}
    assert labels == {XSS, "plain"}


CROSS = [
    "/api/experiments/uidemo:1/runs",  # no store named: ambiguous, refused
    "/api/experiments/gamma@uidemo:1/runs",
    "/api/experiments/alpha-runs@..%2F..%2Fbeta/runs",
    "/api/experiments/alpha-runs@../beta-runs@uidemo:1/runs",
    "/api/experiments/alpha-runs%2F..%2Fbeta-runs@uidemo:1/runs",
    "/api/experiments/..@uidemo:1/runs",
    "/api/experiments/alpha-runs@beta-runs@uidemo:1/manifest",
    f"{ALPHA}/runs/..%2F..%2F..%2Fbeta%2Fruns/log",
]


@pytest.mark.parametrize("path", CROSS)
def test_keys_cannot_reach_across_or_out_of_roots(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code in (400, 404), (path, response.status_code)
    assert "root:" not in response.text


def test_a_record_pointing_into_another_root_is_refused(projects: Path, tmp_path: Path) -> None:
    """A tampered record of store A whose artifact and data names lead into store B (or
    through a symlink to it) reads nothing of B."""
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(projects / "alpha" / "runs", a)
    shutil.copytree(projects / "beta" / "runs", b)
    (b / "secret.txt").write_text("top secret of b")
    layout = FileSource(a).layout(EID)
    run_id = sorted(layout.done_ids())[0]
    record = read_json(layout.record(run_id))
    os.symlink(b / "secret.txt", layout.artifacts(run_id) / "link.txt")
    record["artifacts"] += [
        {"name": "up", "format": "text", "uri": "../../b/secret.txt"},
        {"name": "absolute", "format": "text", "uri": str(b / "secret.txt")},
        {"name": "link", "format": "text", "uri": f"artifacts/{run_id}/link.txt"},
    ]
    atomic_write_json(layout.record(run_id), record)
    source = open_source([a, b])
    assert isinstance(source, StoreSet)
    with TestClient(build_app(source)) as client:
        base = f"/api/experiments/a@uidemo:1/runs/{run_id}"
        for name in ("up", "absolute", "link"):
            for tail in ("", "/raw"):
                response = client.get(f"{base}/artifacts/{name}{tail}")
                assert response.status_code == 404, (name, tail)
                assert "top secret" not in response.text
        for name in ("..%2F..%2F..%2Fb%2Fsecret", "..%2F..%2Fb%2Fsecret"):
            assert client.get(f"{base}/data/{name}").status_code == 404
        assert client.get(f"{base}/artifacts/weights").status_code == 200


def test_discovery_is_bounded_and_stays_inside(projects: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(projects / "alpha" / "runs", root / "lab" / "runs")
    shutil.copytree(projects / "beta" / "runs", root / ".hidden" / "runs")  # hidden: skipped
    deep = root / "a" / "b" / "c" / "d" / "e"
    shutil.copytree(projects / "beta" / "runs", deep)  # too deep
    outside = tmp_path / "outside"
    shutil.copytree(projects / "beta" / "runs", outside / "runs")
    os.symlink(outside, root / "link-out")  # a symlink out of the served root
    os.symlink(root, root / "lab" / "loop")  # a symlink loop
    os.symlink(outside / "runs" / "uidemo+1", root / "lab" / "runs" / "linked+1")
    assert discover_stores(root) == [root / "lab" / "runs"]
    source = open_source(root)
    assert isinstance(source, StoreSet)
    listed = [(e["key"], e["total"]) for e in source.experiments()]
    assert listed == [("lab-runs@uidemo:1", 18)]  # the symlinked experiment is not served
    # an experiment directory or a store root alone is served as before
    assert isinstance(open_source(root / "lab" / "runs"), FileSource)
    assert isinstance(open_source(root / "lab" / "runs" / "uidemo+1"), FileSource)


def test_new_stores_below_a_served_root_appear(projects: Path, tmp_path: Path, monkeypatch) -> None:
    from metalab_smk.ui import stores

    root = tmp_path / "root"
    shutil.copytree(projects / "alpha" / "runs", root / "one" / "runs")
    source = open_source(root)
    assert [e["key"] for e in source.experiments()] == ["one-runs@uidemo:1"]
    shutil.copytree(projects / "beta" / "runs", root / "two" / "runs")
    monkeypatch.setattr(stores, "REDISCOVER_SECONDS", 0)
    deadline = time.monotonic() + 10
    while len(keys := [e["key"] for e in source.experiments()]) < 2:
        assert time.monotonic() < deadline, keys  # found by a background walk
        time.sleep(0.05)
    assert keys == ["one-runs@uidemo:1", "two-runs@uidemo:1"]


def test_several_paths_and_bad_ones(projects: Path, tmp_path: Path, capsys) -> None:
    a, b = projects / "alpha" / "runs", projects / "beta" / "runs"
    source = open_source([a, b, a / "uidemo+1"])  # the same store twice: once
    assert [e["key"] for e in source.experiments()] == ["runs@uidemo:1", "runs-2@uidemo:1"]
    with pytest.raises(MetalabError, match="is not a directory"):
        open_source([a, tmp_path / "nope"])
    with pytest.raises(MetalabError, match="at most one PATH"):
        open_source([a, b], db="postgresql://127.0.0.1:1/x")
    assert cli_main(["ui", str(a), str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope is not a directory" in err


def test_a_broken_experiment_is_listed_with_its_error(projects: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(projects / "alpha" / "runs", a)
    shutil.copytree(projects / "beta" / "runs", b)
    FileSource(b).layout(EID).run_table.unlink()  # b's experiment cannot be read
    with TestClient(build_app(open_source([a, b]))) as client:
        response = client.get("/api/experiments")
        assert response.status_code == 200
        ok, broken = response.json()["experiments"]
        assert (ok["key"], ok["done"], "error" not in ok) == ("a@uidemo:1", 15, True)
        assert broken["key"] == "b@uidemo:1" and "cannot read its state" in broken["error"]

"""``metalab ui --db URL``: the dashboard over the PostgreSQL index of a real sweep
(real Snakemake, real PostgreSQL from scripts/local-postgres-start.sh), compared with
the dashboard over the files."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the dashboard needs the 'ui' extra")
pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx")
pytest.importorskip("psycopg", reason="psycopg 3 is not installed (postgres extra)")
from starlette.testclient import TestClient
from uistore import XSS, build_store

from metalab_smk.cli import main as cli_main
from metalab_smk.errors import MetalabError
from metalab_smk.store.jsonio import atomic_write_json
from metalab_smk.ui.index_source import IndexSource
from metalab_smk.ui.open import open_source
from metalab_smk.ui.server import build_app
from metalab_smk.ui.source import FileSource

pytestmark = [pytest.mark.postgres, pytest.mark.integration]
EID = "uidemo:1"
API = "/api/experiments/uidemo:1"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("uidbstore"))


def _all_runs(client: TestClient) -> dict:
    response = client.get(f"{API}/runs", params={"limit": "100", "sort": "run_id"})
    assert response.status_code == 200, response.text
    return response.json()


def test_index_serves_the_same_experiments_and_runs(db: str, store: Path) -> None:
    assert cli_main(["index", str(store), "--db", db]) == 0
    source = open_source(store, db)
    assert isinstance(source, IndexSource)
    with (
        TestClient(build_app(FileSource(store))) as files,
        TestClient(build_app(source)) as index,
    ):
        listed = index.get("/api/experiments").json()
        assert listed["source"].startswith(db.rsplit("/", 1)[0])
        (exp,) = listed["experiments"]
        assert exp["experiment_id"] == EID
        assert (exp["total"], exp["done"], exp["failed"], exp["pending"]) == (18, 15, 3, 0)
        (on_disk,) = files.get("/api/experiments").json()["experiments"]
        assert {k: exp[k] for k in ("total", "done", "failed", "pending")} == {
            k: on_disk[k] for k in ("total", "done", "failed", "pending")
        }

        from_index, from_files = _all_runs(index), _all_runs(files)
        assert from_index["total"] == from_files["total"] == 18
        assert from_index["columns"] == from_files["columns"]
        assert from_index["rows"] == from_files["rows"]  # same runs, params, metrics
        columns = from_index["columns"]
        labels = {row[columns.index("param_label")] for row in from_index["rows"]}
        assert labels == {XSS, "plain"}
        failed = index.get(f"{API}/runs", params={"status": "failed"}).json()
        assert failed["total"] == 3

        # a run page and its log, read from the directory the index recorded
        ok = next(r[0] for r in from_index["rows"] if r[columns.index("status")] == "success")
        detail = index.get(f"{API}/runs/{ok}").json()
        assert detail == files.get(f"{API}/runs/{ok}").json()
        assert set(detail["record"]["metrics"]) == {"loss", "score"}
        assert [s for s, _ in detail["steps"]["loss"]] == list(range(10))
        assert "training lr=" in index.get(f"{API}/runs/{ok}/log").json()["text"]
        artifact = index.get(f"{API}/runs/{ok}/artifacts/weights")
        assert artifact.status_code == 200, artifact.text
        assert index.get(f"{API}/manifest").json()["experiment_id"] == EID
        assert index.get(f"{API}/runs/0123456789abcdef").status_code == 404
        assert index.get("/api/experiments/other:1/runs").status_code == 404
        traversal = index.get(f"{API}/runs/{ok}/data/..%2F..%2F.metalab%2Fcompiled")
        assert traversal.status_code == 404


def test_path_limits_the_indexed_experiments(db: str, store: Path, tmp_path: Path) -> None:
    assert cli_main(["index", str(store), "--db", db]) == 0
    assert [e["experiment_id"] for e in IndexSource(db).experiments()] == [EID]
    assert IndexSource(db, tmp_path).experiments() == []


def test_an_index_not_built_yet_is_one_line(db: str) -> None:
    with pytest.raises(MetalabError, match=r"no metalab index yet.*metalab index"):
        IndexSource(db)


def test_bad_url_is_one_line_with_the_password_masked(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for url in (
        "postgresql://me:s3cret@127.0.0.1:1/metalab",
        "postgresql://me:s3cret@127.0.0.1:notaport/metalab",
    ):
        assert cli_main(["ui", str(store), "--db", url]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert "s3cret" not in err and "me:***@127.0.0.1" in err


def test_live_state_comes_from_reachable_directories(db: str, store: Path, tmp_path: Path) -> None:
    """The index holds finished runs only: a run in flight (a ``.partial`` log of a live
    process, no record yet) and the head state are read from the recorded directory."""
    copy = tmp_path / "runs"
    shutil.copytree(store, copy)
    assert cli_main(["index", str(copy), "--db", db]) == 0
    layout = FileSource(copy).layout(EID)
    run_id = sorted(layout.done_ids())[0]
    layout.record(run_id).unlink()  # as while the run executes again
    header = json.dumps({"pid": os.getpid(), "host": os.uname().nodename})  # this process
    layout.partial_log(run_id, os.getpid()).write_text(f"# metalab run {header}\nstep 3\n")
    head = {"pid": 2**22 + 7, "host": os.uname().nodename, "log": str(tmp_path / "head.log")}
    atomic_write_json(layout.head_file, head)
    with TestClient(build_app(IndexSource(db, copy))) as client:
        (exp,) = client.get("/api/experiments").json()["experiments"]
        assert exp["live"] is True and "live_note" not in exp
        assert (exp["total"], exp["done"], exp["running"], exp["failed"]) == (18, 14, 1, 3)
        assert exp["pending"] == 0 and exp["head"] == "local: died: it ended without a message"
        assert exp["store"] == str(copy)
        assert client.get(f"{API}/in_progress").json() == {"total": 1, "runs": [run_id]}
        assert client.get(f"{API}/runs").json()["total"] == 18  # the table: the index's


def test_unreachable_directories_say_so(db: str, store: Path, tmp_path: Path) -> None:
    copy = tmp_path / "runs"
    shutil.copytree(store, copy)
    assert cli_main(["index", str(copy), "--db", db]) == 0
    shutil.move(copy, tmp_path / "moved")  # as on a server that does not mount it
    with TestClient(build_app(IndexSource(db))) as client:
        (exp,) = client.get("/api/experiments").json()["experiments"]
        assert exp["live"] is False
        assert exp["live_note"] == "live state unavailable: directory not reachable"
        assert exp["running"] is None and exp["pending"] is None and exp["head"] is None
        assert (exp["total"], exp["done"], exp["failed"]) == (18, 15, 3)  # as indexed
        assert client.get(f"{API}/runs").json()["total"] == 18


def test_a_directory_whose_state_cannot_be_read_is_listed_not_live(
    db: str, store: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "runs"
    shutil.copytree(store, copy)
    assert cli_main(["index", str(copy), "--db", db]) == 0
    FileSource(copy).layout(EID).head_file.write_text('{"pid": 1}')  # damaged
    with TestClient(build_app(IndexSource(db, copy))) as client:
        (exp,) = client.get("/api/experiments").json()["experiments"]
    assert exp["live"] is False and "head.json is damaged" in exp["live_note"]
    assert exp["done"] == 15  # the indexed counts stay


def test_the_dashboard_takes_the_locators_load_results_takes(db: str, store: Path) -> None:
    """`metalab ui URL` serves the index as `--db URL` does; two URLs are one line."""
    assert cli_main(["index", str(store), "--db", db]) == 0
    by_path = open_source(db)
    assert isinstance(by_path, IndexSource)
    assert [e["experiment_id"] for e in by_path.experiments()] == [EID]
    limited = open_source([db, store.parent / "elsewhere"])
    assert isinstance(limited, IndexSource) and limited.experiments() == []
    with pytest.raises(MetalabError, match="one PostgreSQL index URL"):
        open_source(db, db)

"""``metalab ui`` over several stores and over the PostgreSQL index with live state, in
a real headless Chromium (the fixtures of ``test_ui_browser``)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
from pathlib import Path

import pytest
import test_ui_browser as ui
from uistore import build_store, free_port, start_server

from metalab_smk.cli import main as cli_main
from metalab_smk.ui.source import FileSource

pytestmark = pytest.mark.integration
browser, page, shots, _open, _shot = ui.browser, ui.page, ui.shots, ui._open, ui._shot


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``projects/alpha/runs`` (lr 0.1/0.05/0.01) and ``projects/beta/runs`` (lr
    0.2/0.3): the same experiment ``uidemo:1`` in two stores."""
    base = tmp_path_factory.mktemp("uibrowserstores")
    build_store(base / "projects" / "alpha")
    build_store(base / "projects" / "beta", lrs=(0.2, 0.3))
    return base


@pytest.fixture(scope="module")
def server(base: Path):
    port = free_port()
    process, _ = start_server(["projects"], port, cwd=base)  # stores found below it
    yield f"http://127.0.0.1:{port}/"
    process.terminate()
    process.wait(timeout=10)


def test_experiments_of_both_stores_and_the_second_opened(page, server, shots) -> None:
    _open(page, server, "#experiments")
    assert page.locator("#experiments thead th").all_inner_texts()[:2] == ["store", "experiment"]
    rows = page.locator("#experiments tbody tr")
    assert rows.count() == 2
    cells = [rows.nth(i).locator("td").all_inner_texts() for i in range(2)]
    assert [c[:3] for c in cells] == [
        [os.path.join("projects", "alpha", "runs"), "uidemo", "1"],
        [os.path.join("projects", "beta", "runs"), "uidemo", "1"],
    ]
    assert [c[4] for c in cells] == ["15", "12"] and [c[8] for c in cells] == ["18", "12"]
    _shot(page, shots / "experiments-stores.png")

    rows.nth(1).locator("a").click()  # the second store's uidemo:1
    page.wait_for_selector("#runs tbody tr")
    assert page.locator("#runs tbody tr").count() == 12
    assert page.inner_text("#store") == "store: " + os.path.join("projects", "beta", "runs")
    headers = page.locator("#runs thead th").all_inner_texts()
    lr = headers.index("lr")
    values = {r.locator("td").nth(lr).inner_text() for r in page.locator("#runs tbody tr").all()}
    assert values == {"0.2", "0.3"}
    page.locator("#runs tbody tr").first.locator("a").click()
    page.wait_for_selector("#params")
    params = page.locator("#params tr").all_inner_texts()
    assert any(text.startswith("lr") and ("0.2" in text or "0.3" in text) for text in params)
    assert "training lr=0." in page.inner_text("#log")


def test_traversal_across_roots_is_refused(page, server, base: Path) -> None:
    (base / "projects" / "beta" / "secret.txt").write_text("top secret")
    port = int(server.rstrip("/").rsplit(":", 1)[1])
    for path in (
        "/api/experiments/alpha-runs@..%2F..%2Fbeta/runs",
        "/api/experiments/alpha-runs@../../beta/secret.txt",
        "/api/experiments/beta-runs@uidemo:1/runs/..%2F..%2F..%2Fsecret.txt/log",
        "/api/experiments/uidemo:1/runs",
        "/static/..%2F..%2F..%2F..%2Fsecret.txt",
    ):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", path)  # sent as is: no client-side normalisation of ".."
        response = conn.getresponse()
        body = response.read().decode()
        conn.close()
        assert response.status in (400, 404), (path, response.status)
        assert "top secret" not in body
    for key, message in (
        ("alpha-runs%40..%2Fbeta-runs%40uidemo%3A1", "no such API endpoint"),
        ("gamma%40uidemo%3A1", "no experiment 'gamma@uidemo:1' here"),
    ):
        _open(page, server + "#/e/" + key, ".error")
        # only the hash changes: wait for this page's error, not the previous one's
        page.wait_for_function(
            "m => (document.querySelector('.error') || {}).innerText?.includes(m)",
            arg=message,
            timeout=15000,
        )
        assert message in page.inner_text(".error") and page.locator("#runs").count() == 0
    page.problems.clear()  # the browser logs the refused request (404) as a console error


def test_db_shows_running_runs_and_unreachable_directories(
    page, base: Path, db: str, tmp_path: Path
) -> None:
    copy = tmp_path / "runs"
    shutil.copytree(base / "projects" / "alpha" / "runs", copy)
    assert cli_main(["index", str(copy), "--db", db]) == 0
    layout = FileSource(copy).layout("uidemo:1")
    for run_id in sorted(layout.done_ids())[:2]:  # two runs executing again, in this process
        layout.record(run_id).unlink()
        header = json.dumps({"pid": os.getpid(), "host": os.uname().nodename})
        layout.partial_log(run_id, os.getpid()).write_text(f"# metalab run {header}\nstep 1\n")
    port = free_port()
    process, _ = start_server([], port, "--db", db)
    try:
        _open(page, f"http://127.0.0.1:{port}/?refresh_ms=500", "#experiments")
        cells = page.locator("#experiments tbody tr").first.locator("td").all_inner_texts()
        assert cells[0] == str(copy)  # the store column
        assert cells[4:9] == ["13", "2", "3", "0", "18"]  # done, running, failed, pending, total
        shutil.move(copy, tmp_path / "elsewhere")  # the directory is no longer reachable
        page.wait_for_selector(".live-note", timeout=15000)
        cells = page.locator("#experiments tbody tr").first.locator("td").all_inner_texts()
        assert cells[4:9] == ["15", "?", "3", "?", "18"]  # as indexed; unknown ones say so
        assert "live state unavailable: directory not reachable" in cells[10]
    finally:
        process.terminate()
        process.wait(timeout=10)

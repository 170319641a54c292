"""`metalab ui` (a real server process) and `metalab report` from the command line."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from uistore import XSS, build_store, free_port, start_server

pytest.importorskip("uvicorn", reason="the dashboard needs the 'ui' extra")
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("uicli"))


def _metalab(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "metalab_smk.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
    )


def test_ui_serves_on_localhost_and_prints_the_tunnel(store: Path) -> None:
    port = free_port()
    process, lines = start_server(store, port)
    try:
        assert lines[0] == f"metalab ui: serving on http://127.0.0.1:{port}/  (Ctrl-C stops it)"
        assert re.fullmatch(rf"  ssh -N -L {port}:127\.0\.0\.1:{port} \S+@\S+", lines[2])
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/").read().decode()
        assert "/static/app.js" in page
        if shutil.which("ss"):
            listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
            bound = [line for line in listening.splitlines() if f":{port} " in line]
            assert bound and all("127.0.0.1:" in line for line in bound), bound
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_ui_bad_input_is_one_line(store: Path, tmp_path: Path) -> None:
    missing = _metalab("ui", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0 and "not a directory" in missing.stderr
    db = _metalab("ui", str(store), "--db", "postgresql://localhost/metalab")
    assert db.returncode == 2 and "Traceback" not in db.stderr
    assert db.stderr.strip().count("\n") == 0
    assert "cannot use the PostgreSQL index at postgresql://localhost/metalab" in db.stderr


def test_report_is_self_contained_and_escaped(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = _metalab("report", str(store), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}" in result.stdout
    text = out.read_text()
    for external in ("<link", "<script src", 'src="http', "src='http", "url(http", "@import"):
        assert external not in text, external
    assert XSS not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "Summary (replicate statistics per param case)" in text
    assert text.count("<tr><td>") == 5  # five param cases with successful runs
    assert "ValueError: diverged: loss is nan" in text and "Traceback" in text
    assert "3 run(s) did not succeed" in text
    # 2 params x 2 metrics, the stepped metric by label in one panel per lr, the sweep view
    assert text.count("class='chart'") == 7 and text.count("class='chart wide'") == 1
    assert "parameter importance against seed noise" in text
    # lr, label, what the additive model leaves between cases, seed noise (not a full grid)
    assert text.count("<tr class='source'>") == 4
    single = _metalab("report", str(store / "uidemo+1"), "-o", str(tmp_path / "one.html"))
    assert single.returncode == 0 and (tmp_path / "one.html").is_file()


def test_report_bad_input(store: Path, tmp_path: Path) -> None:
    result = _metalab("report", str(store), "--experiment", "nope:1", "-o", str(tmp_path / "x"))
    assert result.returncode == 2
    assert "no experiment 'nope:1'" in result.stderr and "uidemo:1" in result.stderr
    assert not (tmp_path / "x").exists()


def test_compiled_but_not_run_experiment(store: Path, tmp_path: Path) -> None:
    """A sweep that has not started: every run pending, an empty table, a report."""
    pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx")
    from starlette.testclient import TestClient

    from metalab_smk.ui.server import build_app
    from metalab_smk.ui.source import FileSource

    shutil.copy(store.parent / "uidemo.py", tmp_path / "uidemo.py")
    compiled = _metalab("compile", "uidemo.py", "--store", "fresh", cwd=tmp_path)
    assert compiled.returncode == 0, compiled.stderr
    with TestClient(build_app(FileSource(tmp_path / "fresh"))) as client:
        (exp,) = client.get("/api/experiments").json()["experiments"]
        assert (exp["total"], exp["pending"], exp["done"]) == (18, 18, 0)
        page = client.get("/api/experiments/uidemo:1/runs").json()
        assert page["total"] == 0 and page["rows"] == []
        plot = client.get("/api/experiments/uidemo:1/plot", params={"kind": "hist", "y": "x"})
        assert plot.status_code == 400 and "no column 'x'" in plot.json()["error"]
    report = _metalab("report", "fresh", "-o", "r.html", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "r.html").read_text()
    assert "18 runs: 18 without a record yet" in text
    assert "No failed runs." in text

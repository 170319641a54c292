"""The dashboard and the report in a real headless Chromium (Debian's ``chromium``, driven
by playwright pointed at the system browser): what a person sees on each page.

Screenshots go to ``$METALAB_SCREENSHOTS`` (the README's come from
``METALAB_SCREENSHOTS=docs/img python -m pytest tests/e2e/test_ui_browser.py``), else to a
temporary directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from uistore import XSS, build_store, free_port, start_server

from metalab_smk.store.layout import ExperimentDir

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip("no chromium: apt-get install chromium", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
pytest.importorskip("uvicorn", reason="the dashboard needs the 'ui' extra")

pytestmark = pytest.mark.integration  # about a minute in all
EXP = "#/e/uidemo%3A1"
DASH = "\u2013"  # an en dash: the count reads "runs 1<dash>18 of 18"


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = Path(os.environ.get("METALAB_SCREENSHOTS") or tmp_path_factory.mktemp("shots"))
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("uibrowser"))


@pytest.fixture(scope="module")
def server(store: Path):
    port = free_port()
    process, _ = start_server(store, port)
    yield f"http://127.0.0.1:{port}/"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    # bypass_csp: playwright's waits evaluate strings; it also means an unescaped value
    # would run as a script here (and show up as a dialog), not be stopped by the CSP
    context = browser.new_context(viewport={"width": 1280, "height": 860}, bypass_csp=True)
    page = context.new_page()
    page.problems = []  # page errors, console errors and dialogs (an alert would be XSS)
    page.on("pageerror", lambda exc: page.problems.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: page.problems.append(f"console: {msg.text}") if msg.type == "error" else None,
    )
    page.on("dialog", lambda dialog: (page.problems.append("dialog"), dialog.dismiss()))
    yield page
    assert page.problems == []
    context.close()


def _shot(page, path: Path, mask: tuple[str, ...] = (), full_page: bool = False) -> None:
    """A screenshot; ``mask`` covers text that names this machine's paths (store
    location, tracebacks) so the images can go into the docs."""
    covered = [page.locator(selector) for selector in mask]
    page.screenshot(path=path, full_page=full_page, mask=covered, mask_color="#dfe3ea")


def _open(page, url: str, ready: str) -> None:
    page.goto(url)
    page.wait_for_selector(ready, timeout=15000)


def _series(page, selector: str = ".chart") -> list[int]:
    """The series counts of the charts, read in the same check that finds every chart
    drawn (a chart redrawn between two checks reads as none)."""
    drawn = page.wait_for_function(
        """sel => {
            const charts = [...document.querySelectorAll(sel)];
            return charts.length > 0 && charts.every(c => c.dataset.series)
                && charts.map(c => c.dataset.series);
        }""",
        arg=selector,
        timeout=15000,
    )
    return [int(n) for n in drawn.json_value()]


def test_experiments_page(page, server, shots) -> None:
    _open(page, server, "#experiments")
    row = page.locator("#experiments tbody tr")
    assert row.count() == 1
    cells = row.first.locator("td").all_inner_texts()
    assert cells[0] == "uidemo" and cells[3:8] == ["15", "0", "3", "0", "18"]
    _shot(page, shots / "experiments.png", mask=("#source",))


def test_runs_table_shows_params_and_escapes_html(page, server, shots) -> None:
    _open(page, server + EXP, "#runs tbody tr")
    assert page.locator("#runs tbody tr").count() == 18
    assert page.inner_text("#count") == f"runs 1{DASH}18 of 18"
    assert "18 runs = 6 param cases \u00d7 3 replicates" in page.inner_text("#manifest summary")
    headers = page.locator("#runs thead th").all_inner_texts()
    assert headers[1:5] == ["run_id", "status", "label", "lr"]
    first = page.locator("#runs tbody tr").first.locator("td").all_inner_texts()
    assert first[3] == XSS  # the param value, shown as text
    assert first[4] == "0.1"
    assert page.locator("#runs script").count() == 0
    assert page.evaluate("window.__xss === undefined")
    _shot(page, shots / "runs.png")


def test_runs_filter_sort_search_and_columns(page, server) -> None:
    _open(page, server + EXP, "#runs tbody tr")
    page.select_option("#filter-column", "param_lr")
    page.fill("#filter-value", "0.1")
    page.click("#filter-add")
    page.wait_for_function("document.querySelector('#count').textContent.includes('of 6')")
    assert page.inner_text("#count") == f"runs 1{DASH}6 of 6 (filtered from 18)"
    assert "filter=" in page.url
    page.click("#runs thead th:has-text('score')")
    page.wait_for_function("location.hash.includes('sort=score')")
    page.wait_for_timeout(300)
    col = page.locator("#runs thead th").all_inner_texts().index("score")
    rows = page.locator("#runs tbody tr").all()
    scores = [float(r.locator("td").nth(col).inner_text()) for r in rows]
    assert scores == sorted(scores)
    prefix = page.locator("#runs tbody tr").first.get_attribute("data-run")[:5]
    page.fill("#search", prefix)
    page.press("#search", "Enter")
    count = "document.querySelector('#count').textContent"
    page.wait_for_function(f"{count}.startsWith('runs 1{DASH}1 ')")
    page.click("#columns-button")
    page.locator(".menu label:has-text('loss') input").uncheck()
    page.wait_for_function("!location.hash.includes('loss')")
    page.wait_for_timeout(300)
    assert "loss" not in page.locator("#runs thead th").all_inner_texts()


def test_run_detail(page, server, store, shots) -> None:
    _open(page, server + EXP + "?status=success", "#runs tbody tr")
    page.locator("#runs tbody tr").first.locator("a").click()
    page.wait_for_selector("#params")
    params = page.locator("#params tr").all_inner_texts()
    assert any(text.startswith("lr") and "0.1" in text for text in params)
    assert any(XSS in text for text in params)
    assert "training lr=0.1" in page.inner_text("#log")
    assert _series(page, "#steps .chart") == [1]
    page.wait_for_selector("[data-artifact=weights] table.array")
    array = page.locator("[data-artifact=weights] table.array tbody tr")
    assert array.count() == 3
    assert array.nth(2).locator("td").all_inner_texts() == ["2", "8", "9", "10", "11"]
    page.wait_for_function("document.querySelector('#artifacts img')?.naturalWidth === 160")
    assert _series(page, "[data-artifact=curve] .chart") == [1]  # a 1-D array is also drawn
    assert page.locator("[data-artifact=curve] table.array tbody tr").count() == 20
    assert "note" in page.inner_text("#artifacts pre")
    assert "git commit (at compile)" in page.inner_text("#provenance")
    _shot(page, shots / "run.png", full_page=True)


def test_run_detail_shows_its_checkpoint(page, server, store) -> None:
    layout = ExperimentDir.at(store / "uidemo+1")
    for run_id in layout.done_ids():  # whichever run the page opens keeps a checkpoint
        layout.checkpoint(run_id).mkdir(parents=True)
        (layout.checkpoint(run_id) / "state.bin").write_bytes(b"x" * 2500)
    try:
        _open(page, server + EXP + "?status=success", "#runs tbody tr")
        page.locator("#runs tbody tr").first.locator("a").click()
        page.wait_for_selector("#checkpoint")
        text = page.inner_text("#checkpoint")
        assert "checkpoints/" in text and "2500 bytes" in text and "attempts" in text
    finally:
        shutil.rmtree(layout.checkpoints_dir)


def test_failed_run_shows_error_and_traceback(page, server, shots) -> None:
    _open(page, server + EXP + "?status=failed", "#runs tbody tr")
    page.locator("#runs tbody tr").first.locator("a").click()
    page.wait_for_selector("#error")
    assert "ValueError: diverged: loss is nan" in page.inner_text("#error .error")
    assert "Traceback (most recent call last)" in page.inner_text("#error pre")
    assert "diverged" in page.inner_text("#log")
    _shot(page, shots / "run-failed.png", mask=("#error pre", "#log"), full_page=True)


def test_plot_builder_with_error_bars_and_url_state(page, server, shots) -> None:
    _open(page, server + EXP + "/plot?x=param_lr&y=score", "#charts")
    assert _series(page) == [1]
    page.select_option("#group", "param_label")
    page.wait_for_function("location.hash.includes('group=param_label')")
    page.wait_for_function("document.querySelector('.chart')?.dataset.series === '2'")
    url = page.url
    # hover a point of the series named by the HTML param value: the tooltip shows it as text
    names = page.evaluate(
        "echarts.getInstanceByDom(document.querySelector('.chart')).getOption()"
        ".series.filter(s => s.type === 'line').map(s => s.name)"
    )
    index = names.index(f"label={XSS}")  # legends name the param
    x, y = page.evaluate(
        "i => { const c = echarts.getInstanceByDom(document.querySelector('.chart'));"
        " const s = c.getOption().series.filter(s => s.type === 'line')[i];"
        " return c.convertToPixel({seriesName: s.name}, [s.data[0][0], s.data[0][1]]); }",
        index,
    )
    box = page.locator(".chart").first.bounding_box()
    page.mouse.move(box["x"] + x, box["y"] + y)
    tooltip = page.wait_for_selector(f".chart div:has-text('{XSS}')", timeout=5000)
    assert XSS in tooltip.inner_text()
    assert page.locator(".chart script").count() == 0
    _shot(page, shots / "plot.png")
    page.goto("about:blank")
    _open(page, url, ".chart[data-series]")  # the shared link draws the same view
    assert _series(page) == [2]
    assert page.input_value("#group") == "param_label"
    page.select_option("#facet", "param_label")
    page.wait_for_function("document.querySelectorAll('.chart[data-series]').length === 2")
    assert _series(page) == [1, 1]


def test_plot_histogram_and_stepped_curves(page, server, shots) -> None:
    _open(page, server + EXP + "/plot?kind=steps&y=loss&group=param_lr", "#charts")
    assert _series(page) == [3]
    _shot(page, shots / "steps.png")
    _open(page, server + EXP + "/plot?kind=steps&y=loss&mode=runs", "#charts")
    page.wait_for_function("document.querySelector('.chart')?.dataset.series === '15'")
    _open(page, server + EXP + "/plot?kind=hist&y=score&group=param_label", "#charts")
    assert _series(page) == [2]


def test_compare_two_runs(page, server, shots) -> None:
    _open(page, server + EXP, "#runs tbody tr")
    boxes = page.locator("#runs tbody input[type=checkbox]")
    boxes.nth(0).check()
    boxes.nth(10).check()
    page.click("#compare")
    page.wait_for_selector("#compare-table")
    assert page.locator("#compare-table thead th").count() == 4
    diff = page.locator("#compare-table tr.diff").all_inner_texts()
    assert any(row.split("\t")[1] == "label" for row in diff)
    assert any(row.split("\t")[1] == "score" for row in diff)
    assert _series(page, "#compare-steps .chart") == [2]  # loss of both runs
    _shot(page, shots / "compare.png", full_page=True)
    page.check("#only-diff")
    page.wait_for_function("location.hash.includes('diff=1')")
    # the table is drawn again after the hash changes: wait for it, then check
    page.wait_for_function(
        "document.querySelectorAll('#compare-table tbody tr:not(.diff)').length === 0"
    )
    assert page.locator("#compare-table tbody tr:not(.diff)").count() == 0
    assert page.locator("#compare-table tbody tr.diff").count() >= 2


def test_live_refresh(page, store, tmp_path) -> None:
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    port = free_port()
    process, _ = start_server(copy, port)
    try:
        _open(page, f"http://127.0.0.1:{port}/?refresh_ms=500{EXP}", "#runs tbody tr")
        assert page.inner_text("#count") == f"runs 1{DASH}18 of 18"
        for record in sorted((copy / "uidemo+1" / "failed").glob("*.json"))[:2]:
            record.unlink()  # as when a sweep retries failed runs
        page.wait_for_function(
            f"document.querySelector('#count').textContent === 'runs 1{DASH}16 of 16'",
            timeout=10000,
        )
        page.goto(f"http://127.0.0.1:{port}/?refresh_ms=500#/")
        page.wait_for_selector("#experiments")
        cells = page.locator("#experiments tbody tr td").all_inner_texts()
        assert cells[5:8] == ["1", "2", "18"]
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_report_in_the_browser(page, store, tmp_path, shots) -> None:
    out = tmp_path / "report.html"
    subprocess.run(
        [sys.executable, "-m", "metalab_smk.cli", "report", str(store), "-o", str(out)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(out.as_uri())
    # 4 metric charts, loss by label in a panel per lr (at 0.01 only one label ran), the
    # sweep view's parallel coordinates
    assert _series(page) == [3, 3, 2, 2, 1, 2, 2, 1]
    assert all(url.startswith(("file:", "data:", "blob:")) for url in requests), requests
    assert XSS in page.inner_text("table")
    _shot(page, shots / "report.png", mask=("#generated", "pre"), full_page=True)


SLOW_EXPERIMENT = """
import time
import metalab


@metalab.operation
def slow(params, capture):
    time.sleep(0.4)
    capture.metric("y", params["i"] * 2.0)


exp = metalab.Experiment(
    name="slow", version="1", context={}, operation=slow,
    params=metalab.grid(i=list(range(16))), seeds=metalab.seeds(1, 1),
)
"""


def test_live_while_a_real_sweep_runs(page, tmp_path) -> None:
    """`metalab run` in the background; the open runs page and the plot follow it."""
    (tmp_path / "slow.py").write_text(SLOW_EXPERIMENT)
    (tmp_path / "runs").mkdir()
    port = free_port()
    server, _ = start_server(tmp_path / "runs", port)
    env = {**os.environ, "METALAB_HASH_CACHE": str(tmp_path / "hashes.sqlite")}
    sweep = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "metalab_smk.cli",
            "run",
            "slow.py",
            "--cores",
            "1",
            "--chunk-size",
            "1",
        ],
        cwd=tmp_path,
        env=env,
        stdout=(tmp_path / "sweep.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}/?refresh_ms=300"
        page.goto(base + "#/")
        try:
            page.wait_for_selector("#experiments tbody tr", timeout=120000)
        except sync_api.TimeoutError:  # say why: the sweep's own output, the page's text
            output = (tmp_path / "sweep.log").read_text()[-3000:]
            raise AssertionError(
                f"no experiment listed after 120 s; sweep exit {sweep.poll()}, output:\n"
                f"{output}\npage: {page.inner_text('body')[:500]}"
            ) from None
        page.goto(base + "#/e/slow%3A1")
        page.wait_for_selector("#count", timeout=30000)
        seen = set()
        deadline = time.monotonic() + 240  # 16 one-run jobs: slow on a loaded machine
        while time.monotonic() < deadline:
            seen.add(page.inner_text("#count"))
            if page.inner_text("#count") == f"runs 1{DASH}16 of 16":
                break
            page.wait_for_timeout(200)
        assert f"runs 1{DASH}16 of 16" in seen
        assert len(seen) >= 3, seen  # the count moved while the page stayed open
        assert sweep.wait(timeout=120) == 0
        page.goto(base + "#/e/slow%3A1/plot?x=param_i&y=y&agg=none")
        page.wait_for_function("document.querySelector('.chart')?.dataset.series === '1'")
    finally:
        if sweep.poll() is None:
            sweep.terminate()
            sweep.wait(timeout=30)
        server.terminate()
        server.wait(timeout=10)


def test_run_in_progress_follows_its_log_until_the_record_appears(page, store, tmp_path) -> None:
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    layout = ExperimentDir(copy / "uidemo+1")
    run_id = sorted(layout.done_ids())[0]
    record = layout.record(run_id).read_bytes()
    layout.record(run_id).unlink()
    layout.partial_log(run_id, os.getpid()).write_text("# metalab run {}\nepoch 1\n")
    port = free_port()
    process, _ = start_server(copy, port)
    try:
        _open(page, f"http://127.0.0.1:{port}/?refresh_ms=300{EXP}", "#in-progress a")
        assert page.inner_text("#in-progress a") == run_id
        page.click("#in-progress a")
        page.wait_for_selector("#log")
        assert "epoch 1" in page.inner_text("#log")
        with layout.partial_log(run_id, os.getpid()).open("a") as handle:
            handle.write("epoch 2\n")
        page.wait_for_function("document.querySelector('#log').textContent.includes('epoch 2')")
        layout.record(run_id).write_bytes(record)  # the run finishes
        page.wait_for_selector("#params", timeout=10000)  # the full run page replaces it
        assert "lr" in page.inner_text("#params")
    finally:
        process.terminate()
        process.wait(timeout=10)

"""The analysis views in a real headless Chromium: faceted loss curves with bands on a log
axis, the seed-aware sweep view (parallel coordinates with seed-level lines on demand,
importance against seed noise, a paired comparison), a random search (log axis from its
log-uniform source, model-based importance), two versions compared case by case, NaN
shown as a value, and every request of a 10,000-run sweep under 200 ms. Screenshots go
where tests/e2e/test_ui_browser.py puts them ($METALAB_SCREENSHOTS)."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest
import test_ui_browser as ui
from analysisstore import build_analysis_store, build_random_store
from process_env import run_metalab
from uistore import free_port, start_server

from metalab_smk.ui.report import build_report

pytestmark = pytest.mark.integration
browser, page, shots = ui.browser, ui.page, ui.shots
_open, _series, _shot = ui._open, ui._series, ui._shot
EXP = "#/e/lrsweep%3A1"
BENCH = Path(__file__).parents[2] / "benchmarks" / "ui.py"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("analysis")
    build_random_store(base)
    return build_analysis_store(base, versions=("1", "2"))


@pytest.fixture(scope="module")
def server(store: Path):
    port = free_port()
    process, _ = start_server(store, port)
    yield f"http://127.0.0.1:{port}/"
    process.terminate()
    process.wait(timeout=10)


def _chart_option(page, selector: str, expression: str):
    return page.evaluate(
        f"() => {{ const o = echarts.getInstanceByDom(document.querySelector('{selector}'))"
        f".getOption(); return {expression}; }}"
    )


def test_faceted_loss_curves_with_bands_on_a_log_axis(page, server, shots) -> None:
    url = server + EXP + "/plot?kind=steps&y=loss&group=param_lr&facet=param_depth&logy=on"
    _open(page, url, "#charts")
    assert _series(page) == [4, 4, 4]  # depth = 2, 4, 8; one mean curve per lr
    titles = page.evaluate(
        "[...document.querySelectorAll('.chart')].map(e =>"
        " echarts.getInstanceByDom(e).getOption().title[0].text)"
    )
    assert titles == ["depth=2", "depth=4", "depth=8"]
    legend = _chart_option(page, ".chart", "o.legend[0].data")
    assert legend == ["lr=0.0001", "lr=0.001", "lr=0.01", "lr=0.1"]
    assert _chart_option(page, ".chart", "o.yAxis[0].type") == "log"
    bands = _chart_option(page, ".chart", "o.series.filter(s => s.type === 'custom').length")
    assert bands == 4 and _chart_option(page, ".chart", "o.series[1].clip") is True
    _shot(page, shots / "curves.png")
    page.select_option("#smooth", "0.8")
    page.wait_for_function("location.hash.includes('smooth=0.8')")
    page.select_option("#logy", "off")
    page.wait_for_function(
        "(() => { const e = document.querySelector('.chart[data-series]');"
        " const c = e && echarts.getInstanceByDom(e);"
        " return c && c.getOption().yAxis[0].type === 'value'; })()"
    )
    page.select_option("#mode", "runs")  # every run, coloured by its lr
    page.wait_for_function("document.querySelector('.chart')?.dataset.series === '12'")


def test_log_x_for_a_log_grid_param(page, server) -> None:
    _open(page, server + EXP + "/plot?x=param_lr&y=accuracy&group=param_depth", "#charts")
    assert _series(page) == [3]
    assert _chart_option(page, ".chart", "o.xAxis[0].type") == "log"
    legend = _chart_option(page, ".chart", "o.series.map(s => s.name)")
    assert "depth=2" in legend


def test_sweep_view(page, server, shots) -> None:
    _open(page, server + EXP + "/sweep?metric=accuracy", "#importance tbody tr")
    page.wait_for_function("document.querySelector('#parallel')?.dataset.series === '1'")
    axes = _chart_option(page, "#parallel", "o.parallelAxis.map(a => a.name + ':' + a.type)")
    assert axes == ["depth:value", "lr:log", "accuracy:value"]
    assert _chart_option(page, "#parallel", "o.series[0].data.length") == 12
    rows = page.locator("#importance tbody tr").all()
    cells = [r.locator("td").all_inner_texts() for r in rows]
    assert [c[0] for c in cells] == ["lr", "depth", "interactions", "seed noise"]
    assert cells[0][-1] == "above seed noise" and cells[0][2].endswith("%")
    page.wait_for_selector("#pair p b")
    text = page.inner_text("#pair")
    assert "paired t on 3 shared seeds" in text and "bootstrap 95% CI" in text
    assert "depth=8, lr=0.1" in text  # the best case against the second best
    _shot(page, shots / "sweep.png", full_page=True)
    page.select_option("#case-a", "depth=2, lr=0.0001")
    page.wait_for_function("document.querySelector('#pair')?.innerText.includes('lr=0.0001')")
    page.select_option("#sweep-metric", "val_loss")
    page.wait_for_function("location.hash.includes('metric=val_loss')")
    page.wait_for_selector("#importance tbody tr")


def test_seed_level_lines_on_demand(page, server, shots) -> None:
    _open(page, server + EXP + "/sweep?metric=accuracy", "#importance tbody tr")
    page.wait_for_function("document.querySelector('#parallel')?.dataset.series === '1'")
    page.select_option("#sweep-seeds", "on")
    page.wait_for_function("document.querySelector('#parallel')?.dataset.series === '2'")
    assert "seeds=on" in page.evaluate("location.hash")
    names = _chart_option(page, "#parallel", "o.series.map(s => s.name + ':' + s.data.length)")
    assert names == ["cases:12", "seeds:36"]  # one line per case, one per seed replicate
    assert "the 36 seed replicates" in page.inner_text("main")
    _shot(page, shots / "sweep-seeds.png")
    types = "o.parallelAxis.map(a => a.type).join(',')"
    for choice, expected in (("linear", "value,value,value"), ("log", "log,log,value")):
        page.select_option("#sweep-paxes", choice)  # the param axes' toggle
        page.wait_for_function(
            "(() => { const e = document.querySelector('#parallel[data-series]');"
            " const c = e && echarts.getInstanceByDom(e);"
            f" return c && c.getOption().parallelAxis.map(a => a.type).join(',') === '{expected}';"
            " })()"
        )
    assert _chart_option(page, "#parallel", types) == "log,log,value"


def test_random_search_log_axis_and_model_importance(page, server, store) -> None:
    search = "#/e/search%3A1"
    _open(page, server + search + "/sweep", "#importance tbody tr")
    page.wait_for_function("document.querySelector('#parallel')?.dataset.series === '1'")
    axes = _chart_option(page, "#parallel", "o.parallelAxis.map(a => a.name + ':' + a.type)")
    assert axes == ["dropout:value", "lr:log", "accuracy:value"]  # lr is drawn log-uniformly
    method = page.inner_text("#importance-method")
    assert "additive model of the case means" in method and "Type II" in method
    cells = [r.locator("td").all_inner_texts() for r in page.locator("#importance tbody tr").all()]
    assert [c[0] for c in cells] == ["lr", "dropout", "interactions", "seed noise"]
    assert cells[0][1] == "adjusted effect (degree 3)" and cells[0][-1] == "above seed noise"
    assert float(cells[1][5]) > 0.05  # dropout does nothing: not significant against noise
    _open(page, server + search + "/plot?x=param_lr&y=accuracy&agg=none", "#charts")
    assert _series(page) == [1]
    assert _chart_option(page, ".chart", "o.xAxis[0].type") == "log"
    report = build_report(store, "search:1")  # the report reads the same manifest
    assert '"name": "lr", "categorical": false, "log": true' in report
    assert '"log_x": true' in report and "additive model of the case means" in report


def test_versions_view(page, server, shots) -> None:
    _open(page, server + EXP, "#runs tbody tr")
    page.click("#versions-link")
    page.wait_for_selector("#versions tbody tr")
    assert page.input_value("#other-version") == "lrsweep:2"
    page.select_option("#versions-metric", "accuracy")
    page.wait_for_function(
        "document.querySelector('#versions-summary')?.innerText.includes('of accuracy')"
    )
    rows = [r.locator("td").all_inner_texts() for r in page.locator("#versions tbody tr").all()]
    assert len(rows) == 12  # every case both versions ran
    deltas = [float(r[5]) for r in rows]
    assert deltas == pytest.approx([-0.05] * 12)  # version 2 adds 0.05 to every run
    summary = page.inner_text("#versions-summary")
    assert "12 cases" in summary and "lrsweep:1 \u2212 lrsweep:2" in summary
    clear = page.locator("#versions tbody tr.diff").count()  # CI excludes 0: highlighted
    assert clear >= 10 and f"{clear} with a 95% CI that excludes 0" in summary
    page.wait_for_function("document.querySelector('#versions-chart')?.dataset.series === '1'")
    _shot(page, shots / "versions.png", full_page=True)
    wrong = page.request.get(server + "api/experiments/lrsweep:1/versions?other=search:1")
    assert wrong.status == 400 and "not another version" in wrong.json()["error"]
    _open(page, server + "#/e/search%3A1/versions", "#no-versions")


def test_nan_shown_as_a_value_in_the_table(page, server) -> None:
    _open(page, server + EXP + "?columns=run_id,status,param_lr,grad_norm,ratio", "#runs tbody tr")
    headers = page.locator("#runs thead th").all_inner_texts()
    row = page.locator("#runs tbody tr").first.locator("td").all_inner_texts()
    assert row[headers.index("grad_norm")] == "NaN"
    assert row[headers.index("ratio")] == "inf"
    assert page.locator("#sweep-link").count() == 1


def test_report_has_faceted_curves_and_the_sweep_section(page, store, tmp_path, shots) -> None:
    out = tmp_path / "report.html"
    result = run_metalab(
        tmp_path, "report", str(store), "-o", str(out), "--experiment", "lrsweep:1"
    )
    assert result.returncode == 0, result.stderr
    page.goto(out.as_uri())
    counts = _series(page)
    assert counts[-4:] == [3, 3, 3, 1]  # loss by depth in a panel per lr; parallel coordinates
    assert "below seed noise" not in page.inner_text("table.importance")
    summary = page.inner_text("table")  # the first table: replicate statistics per case
    assert "3 NaN" in summary and "\tinf\t" in summary and "(1 NaN)" in summary
    rows = page.locator("table.importance tbody tr td:first-child").all_inner_texts()
    assert rows == ["lr", "depth", "interactions", "seed noise"]
    page.check("#log-y")  # the report's log toggle redraws every chart
    page.wait_for_function(
        "echarts.getInstanceByDom(document.querySelector('.chart')).getOption().yAxis[0].type"
        " === 'log'"
    )
    _shot(page, shots / "report-sweep.png", mask=("#generated",), full_page=True)


def _bench_build():
    spec = importlib.util.spec_from_file_location("uibench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build


def _request_times(page, root: Path) -> dict[str, float]:
    """Server time (request sent to response ended, ms) of every API request behind the
    runs page, faceted curves, a grouped plot and the sweep view of two metrics, on a
    freshly started server."""
    port = free_port()
    process, _ = start_server(root, port)
    times: dict[str, float] = {}

    def finished(request) -> None:
        if "/api/" in request.url:
            timing = request.timing
            times[request.url.split("/api/")[1]] = timing["responseEnd"] - timing["requestStart"]

    base = f"http://127.0.0.1:{port}/#/e/uibench%3A1"
    done = "document.querySelector('{}')"
    chart = done.format(".chart[data-series]")
    views = [
        ("/plot?kind=steps&y=loss&group=param_b&facet=param_a", chart),
        ("/plot?x=param_a&y=y&group=param_b", chart),
        ("/sweep?metric=y", done.format("#pair p")),
        ("/sweep?metric=z", "document.querySelector('#sweep-metric')?.value === 'z' && "
         + done.format("#pair p")),
        ("/sweep?metric=y&seeds=on", "document.querySelector('#parallel')?.dataset.series"
         " === '2'"),
    ]  # fmt: skip
    try:
        _open(page, base, "#runs tbody tr")
        time.sleep(1)  # the server's warm-up reads the summary once, in the background
        page.on("requestfinished", finished)
        for path, ready in views:
            page.goto(base + path)
            page.wait_for_function(ready, timeout=15000)
        page.wait_for_load_state("networkidle")
        page.remove_listener("requestfinished", finished)
    finally:
        process.terminate()
        process.wait(timeout=10)
    return times


def test_every_request_of_a_10000_run_sweep_is_fast(page, tmp_path) -> None:
    root = _bench_build()(tmp_path, 1024, 10)  # 32 x 32 cases x 10 seeds = 10,240 runs
    times: dict[str, float] = {}
    for attempt in (1, 2, 3):  # more fresh servers only when this shared machine was busy
        for url, ms in _request_times(page, root).items():  # each request's best pass
            times[url] = min(ms, times.get(url, ms))
        print(
            f"10,240 runs, after pass {attempt}, best request times (ms):",
            {u: round(t) for u, t in times.items()},
        )
        if all(ms < 200 for ms in times.values()):
            break
    assert sum("sweep" in url for url in times) == 5, times  # 3 views; 2 pairs (y, z)
    assert {url: ms for url, ms in times.items() if ms >= 200} == {}

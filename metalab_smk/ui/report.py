"""``metalab report``: one self-contained HTML file per store or experiment.

The file holds its data (JSON in a non-executed script element, ``<`` escaped), the chart
library and the drawing code inline, and no reference to anything outside itself, so it
opens offline and can be attached to an email. Every value is HTML-escaped.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from metalab_smk.errors import MetalabError
from metalab_smk.results.aggregate import aggregate
from metalab_smk.ui import plots
from metalab_smk.ui.axes import log_params
from metalab_smk.ui.query import columns_of, jsonable
from metalab_smk.ui.source import FileSource
from metalab_smk.ui.sweep import sweep_view

__all__ = ["build_report", "write_report"]

STATIC = Path(__file__).parent / "static"
MAX_CHARTS = 40
MAX_GROUPS = 8
MAX_FAILURES = 200
MAX_SUMMARY_ROWS = 1000


BOOT = """
(function () {
  var specs = JSON.parse(document.getElementById("report-data").textContent);
  var toggle = document.getElementById("log-y");
  function drawAll() {
    specs.forEach(function (spec) {
      var el = document.getElementById(spec.id);
      el.dataset.renderer = "svg";  // crisp when printed or zoomed
      if (spec.sweep) {
        window.metalabCharts.draw(el, window.metalabCharts.parallelOption(spec.sweep,
          toggle && toggle.checked ? true : spec.sweep.metric_log));
        return;
      }
      if (toggle && toggle.checked) spec.data.logY = true; else delete spec.data.logY;
      var opts = window.metalabCharts.options(spec.data);
      if (opts.length) window.metalabCharts.draw(el, opts[spec.panel || 0]);
      else { el.textContent = "no finite values to plot"; el.dataset.series = "0"; }
    });
  }
  if (toggle) toggle.addEventListener("change", drawAll);
  drawAll();
})();
"""


def _e(value: Any) -> str:
    return html.escape(_fmt(value), quote=True)


def _fmt(value: Any) -> str:
    value = jsonable(value)
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _number(value: Any) -> str:
    """A statistic, ±inf written out (an infinite value is a value)."""
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return _fmt(value)


def _script_json(data: Any) -> str:
    text = json.dumps(jsonable(data), allow_nan=False, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _swept(frame: pd.DataFrame, params: list[str]) -> list[str]:
    return [p for p in params if frame[p].nunique(dropna=False) > 1]


def _summary_table(frame: pd.DataFrame, params: list[str], metrics: list[str]) -> str:
    if not metrics:
        return "<p class='muted'>No numeric metrics.</p>"
    stats = ("mean", "ci95", "std", "count", "nan")
    table = aggregate(frame, metrics=metrics, by=params, stats=stats)
    head = "".join(f"<th>{_e(p.removeprefix('param_'))}</th>" for p in params)
    head += "".join(f"<th>{_e(m)} (mean ± 95% CI)</th><th>{_e(m)} std</th>" for m in metrics)
    head += "<th>n</th>"
    rows = []
    for row in table.head(MAX_SUMMARY_ROWS).to_dict("records"):
        cells = "".join(f"<td>{_e(row[p])}</td>" for p in params)
        for m in metrics:
            mean, half, nans = row[f"{m}_mean"], row[f"{m}_ci95"], int(row[f"{m}_nan"])
            text = _number(mean) if row[f"{m}_count"] else ""
            text += "" if pd.isna(half) else f" ± {_fmt(half)}"
            text += (f" ({nans} NaN)" if text else f"{nans} NaN") if nans else ""
            cells += f"<td class='num'>{html.escape(text or '—')}</td>"
            cells += f"<td class='num'>{_e(row[f'{m}_std'])}</td>"
        count = max(int(row[f"{m}_count"]) + int(row[f"{m}_nan"]) for m in metrics)
        rows.append(f"<tr>{cells}<td class='num'>{count}</td></tr>")
    more = (
        f"<p class='muted'>The first {MAX_SUMMARY_ROWS:,} of {len(table):,} param cases; "
        "all of them: <code>load_results(...).aggregate()</code>.</p>"
        if len(table) > MAX_SUMMARY_ROWS
        else ""
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"


def _failures(frame: pd.DataFrame, source: FileSource, experiment_id: str) -> str:
    failed = frame[frame["status"] != "success"] if "status" in frame else frame.iloc[0:0]
    if failed.empty:
        return "<p>No failed runs.</p>"
    params = [c for c in frame.columns if c.startswith("param_")]
    parts = [f"<p>{len(failed)} run(s) did not succeed.</p>"]
    for row in failed.head(MAX_FAILURES).to_dict("records"):
        try:
            error = source.record(experiment_id, row["run_id"]).get("error") or {}
        except MetalabError:
            error = {}
        described = ", ".join(f"{p.removeprefix('param_')}={_fmt(row[p])}" for p in params)
        parts.append(
            f"<h3><code>{_e(row['run_id'])}</code> {_e(row.get('status'))}</h3>"
            f"<p class='muted'>{html.escape(described)}</p>"
            f"<p class='error'>{_e(error.get('type', row.get('error_type')))}: "
            f"{_e(error.get('message', row.get('error_message')))}</p>"
            + (f"<pre>{_e(error['traceback'])}</pre>" if error.get("traceback") else "")
        )
    if len(failed) > MAX_FAILURES:
        parts.append(f"<p class='muted'>… and {len(failed) - MAX_FAILURES} more.</p>")
    return "".join(parts)


def _experiment_section(source: FileSource, experiment_id: str, specs: list[dict[str, Any]]) -> str:
    frame = source.frame(experiment_id)
    kinds = columns_of(frame)
    params = kinds["params"]
    metrics = [m for m in kinds["metrics"] if m in kinds["numeric"]]
    swept = _swept(frame, params)
    logs = log_params(source.manifest(experiment_id).get("params"))
    counts = frame["status"].value_counts().to_dict() if len(frame) else {}
    total = len(source.layout(experiment_id).read_run_ids())
    out = [
        f"<h2>{_e(experiment_id)}</h2>",
        f"<p>{total} runs: "
        + ", ".join(
            [f"{_e(n)} {_e(k)}" for k, n in sorted(counts.items())]
            + ([f"{total - len(frame)} without a record yet"] if total > len(frame) else [])
        )
        + "</p>",
        "<h3>Summary (replicate statistics per param case)</h3>",
        _summary_table(frame, params, metrics),
    ]
    charts: list[dict[str, Any]] = []
    for x in swept:
        others = [p for p in swept if p != x and frame[p].nunique(dropna=False) <= MAX_GROUPS]
        group = others[0] if others else ""
        for y in metrics:
            if len(specs) + len(charts) >= MAX_CHARTS:
                break
            data = plots.xy(frame, x, y, group=group, agg="mean", err="ci95", log_params=logs)
            charts.append(data)
    steps = source.steps(experiment_id)
    stepped = sorted(steps["name"].unique().tolist()) if len(steps) else []
    group = next((p for p in swept if frame[p].nunique(dropna=False) <= MAX_GROUPS), "")
    facet = next((p for p in swept if p != group and frame[p].nunique() <= MAX_GROUPS), "")
    for name in stepped:
        if len(specs) + len(charts) < MAX_CHARTS:
            charts.append(plots.stepped(frame, steps, name, group=group, facet=facet))
    if charts:
        out.append("<h3>Metrics against params (mean ± 95% CI) and stepped metrics</h3>")
        boxes = []
        for data in charts:
            for panel in range(len(data.get("panels") or [None])):
                chart_id = f"chart-{len(specs)}"
                specs.append({"id": chart_id, "data": data, "panel": panel})
                boxes.append(f"<div class='chart' id='{chart_id}'></div>")
        out.append(f"<div class='charts'>{''.join(boxes)}</div>")
    if swept and metrics:
        out.append(_sweep_section(frame, metrics[0], specs, logs))
    out.append("<h3>Failures</h3>")
    out.append(_failures(frame, source, experiment_id))
    return "".join(out)


def _sweep_section(
    frame: pd.DataFrame, metric: str, specs: list[dict[str, Any]], logs: set[str]
) -> str:
    """Parallel coordinates over case means and the importance table of ``metric``."""
    view = sweep_view(frame, metric, logs)
    chart_id = f"chart-{len(specs)}"
    specs.append({"id": chart_id, "sweep": view})
    rows = "".join(
        f"<tr class='source'><td>{_e(r['source'])}</td><td>{_e(r['kind'])}</td>"
        f"<td class='num'>{_e(None if r['share'] is None else round(100 * r['share'], 1))} %</td>"
        f"<td class='num'>{_e(r['F'])}</td><td class='num'>{_e(r['p'])}</td>"
        f"<td>{'below seed noise' if r['below_noise'] else ''}</td></tr>"
        for r in view["importance"]
    )
    return (
        f"<h3>Sweep: case means of {_e(metric)} and parameter importance against seed "
        f"noise</h3><div class='chart wide' id='{chart_id}'></div>"
        "<table class='importance'><thead><tr><th>source</th><th></th><th>share of variance"
        f"</th><th>F</th><th>p</th><th></th></tr></thead><tbody>{rows}</tbody></table>"
        f"<p class='muted'>{_e(view['method'])}; seed noise sd {_e(view['noise_sd'])}; from "
        f"<code>results.importance({_e(repr(metric))})</code></p>"
    )


def build_report(path: str | os.PathLike[str], experiment_id: str | None = None) -> str:
    """The report's HTML for a store root or an experiment directory."""
    source = FileSource(path)
    ids = list(source.layouts())
    if experiment_id is not None:
        if experiment_id not in ids:
            held = ", ".join(ids) or "none"
            raise MetalabError(f"no experiment {experiment_id!r} under {path}; it holds: {held}.")
        ids = [experiment_id]
    if not ids:
        raise MetalabError(f"{path} holds no compiled experiment; pass a store or experiment dir.")
    specs: list[dict[str, Any]] = []
    sections = [_experiment_section(source, eid, specs) for eid in ids]
    when = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    library = (STATIC / "vendor" / "echarts.min.js").read_text(encoding="utf-8")
    charts = (STATIC / "charts.js").read_text(encoding="utf-8")
    css = (STATIC / "report.css").read_text(encoding="utf-8")
    title = "metalab report: " + ", ".join(ids)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{css}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p class='muted' id='generated'>generated {when} from "
        f"{html.escape(str(path))}; error bars and ± are 95 % Student-t intervals of the "
        "mean over seed replicates. <label><input type='checkbox' id='log-y'> log y axes"
        "</label></p>"
        + "".join(sections)
        + f"<script type='application/json' id='report-data'>{_script_json(specs)}</script>"
        + f"<script>{library}</script><script>{charts}</script><script>{BOOT}</script>"
        + "</body></html>"
    )


def write_report(
    path: str | os.PathLike[str], output: str | os.PathLike[str], experiment_id: str | None = None
) -> Path:
    """Write the report of ``path`` to ``output``; returns the written path."""
    text = build_report(path, experiment_id)
    target = Path(output)
    target.write_text(text, encoding="utf-8")
    return target

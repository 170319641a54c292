/* Chart drawing shared by the dashboard and the report (a classic script: the report
 * inlines it). Input is the plot data computed on the server (metalab_smk/ui/plots.py);
 * output is an ECharts option. Values are drawn as text by ECharts' canvas, never as HTML. */
(function () {
  "use strict";

  const PALETTE = ["#3366cc", "#dc3912", "#ff9900", "#109618", "#990099", "#0099c6",
    "#dd4477", "#66aa00", "#b82e2e", "#316395", "#994499", "#22aa99"];

  function fmt(v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(+v.toPrecision(5));
    return String(v);
  }

  function escapeText(s) {  // tooltips are HTML in ECharts: escape everything we put there
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;",
      '"': "&quot;", "'": "&#39;" }[c]));
  }

  function label(column) {
    return String(column || "").replace(/^param_/, "");
  }

  function base(title, xName, yName, xType) {
    xName = label(xName);
    yName = label(yName);
    return {
      color: PALETTE,
      animation: false,
      title: title ? { text: title, left: "center", textStyle: { fontSize: 13 } } : undefined,
      tooltip: { trigger: "item", formatter: (p) => escapeText(tooltip(p)) },
      legend: { type: "scroll", bottom: 0 },
      grid: { left: 64, right: 24, top: title ? 36 : 16, bottom: 64, containLabel: false },
      xAxis: { type: xType, name: xName, nameLocation: "middle", nameGap: 28, scale: true },
      yAxis: { type: "value", name: yName, nameLocation: "middle", nameGap: 48, scale: true },
      series: [],
    };
  }

  function tooltip(p) {
    const d = p.data || [];
    const name = p.seriesName || "";
    if (Array.isArray(d)) {
      let s = name + ": (" + fmt(d[0]) + ", " + fmt(d[1]) + ")";
      if (d[2] !== null && d[2] !== undefined) s += " [" + fmt(d[2]) + ", " + fmt(d[3]) + "]";
      if (d[4] !== undefined) s += " n=" + d[4];
      return s;
    }
    return name + ": " + fmt(p.value);
  }

  function errorBars(name, points, color, categorical) {
    return {
      type: "custom",
      name: name,
      silent: true,
      data: points.filter((p) => p[2] !== null && p[3] !== null),
      encode: { x: 0, y: [1, 2, 3] },
      clip: true,
      renderItem: function (params, api) {
        const x = categorical ? api.value(0) : api.value(0);
        const lo = api.coord([x, api.value(2)]);
        const hi = api.coord([x, api.value(3)]);
        const w = 5;
        const style = { stroke: color, lineWidth: 1.5 };
        return {
          type: "group",
          children: [
            { type: "line", shape: { x1: lo[0], y1: lo[1], x2: hi[0], y2: hi[1] }, style },
            { type: "line", shape: { x1: lo[0] - w, y1: lo[1], x2: lo[0] + w, y2: lo[1] }, style },
            { type: "line", shape: { x1: hi[0] - w, y1: hi[1], x2: hi[0] + w, y2: hi[1] }, style },
          ],
        };
      },
      z: 1,
    };
  }

  function band(name, points, color, floor) {
    // on a log axis a lower bound at or below zero is drawn at the smallest value shown
    const pts = points.filter((p) => p[2] !== null && p[3] !== null)
      .map((p) => [p[0], p[1], floor && p[2] <= 0 ? floor : p[2], p[3]]);
    return {
      type: "custom",
      name: name,
      silent: true,
      clip: true,  // never drawn outside the axes
      data: pts.length ? [0] : [],
      renderItem: function (params, api) {
        const upper = pts.map((p) => api.coord([p[0], p[3]]));
        const lower = pts.map((p) => api.coord([p[0], p[2]])).reverse();
        return {
          type: "polygon",
          shape: { points: upper.concat(lower) },
          style: { fill: color, opacity: 0.18 },
        };
      },
      z: 0,
    };
  }

  function cat(v) {
    return v === null || v === undefined ? "(none)" : String(v);
  }

  function xyOption(data, panel) {
    const categorical = data.categorical;
    const agg = data.agg !== "none";
    const opt = base(panel.title, data.x, data.y + (agg ? " (" + data.agg + (data.err !== "none" ? " ± " + data.err : "") + ")" : ""),
      categorical ? "category" : "value");
    logAxes(opt, data);
    if (categorical) {
      const cats = [];
      panel.series.forEach((s) => s.points.forEach((p) => { if (!cats.includes(cat(p[0]))) cats.push(cat(p[0])); }));
      opt.xAxis.data = cats.map(String);
      opt.xAxis.scale = false;
    }
    panel.series.forEach((s, i) => {
      const color = PALETTE[i % PALETTE.length];
      const points = s.points.map((p) => [categorical ? cat(p[0]) : p[0], p[1], p[2], p[3], p[4]]);
      if (!categorical) points.sort((a, b) => a[0] - b[0]);
      opt.series.push({
        type: agg ? "line" : "scatter",
        name: s.name,
        data: points,
        symbolSize: agg ? 7 : 6,
        itemStyle: { color },
        lineStyle: { color, width: data.lines === false ? 0 : 2 },
        markLine: data.zero ? { silent: true, symbol: "none", data: [{ yAxis: 0 }],
          lineStyle: { color: "#555", type: "dashed" }, label: { show: false } } : undefined,
        z: 2,
      });
      if (agg) opt.series.push(errorBars(s.name, points, color, categorical));
    });
    return opt;
  }

  function histOption(data) {
    const labels = [];
    const short = (v) => String(+Number(v).toPrecision(3));
    for (let i = 0; i + 1 < data.edges.length; i++) labels.push(short(data.edges[i]) + "–" + short(data.edges[i + 1]));
    const opt = base("", data.y, "runs", "category");
    opt.xAxis.data = labels;
    opt.xAxis.scale = false;
    opt.yAxis.scale = false;
    opt.yAxis.minInterval = 1;
    opt.tooltip.formatter = (p) => escapeText(p.seriesName + " " + p.name + ": " + p.value);
    data.series.forEach((s) => opt.series.push({ type: "bar", name: s.name, data: s.counts, stack: "all", barCategoryGap: "4%" }));
    return opt;
  }

  function positiveMin(panels) {
    let min = Infinity;
    panels.forEach((panel) => panel.series.forEach((s) => s.points.forEach((p) => {
      for (const v of [p[1], p[2], p[3]]) if (typeof v === "number" && v > 0 && v < min) min = v;
    })));
    return min === Infinity ? null : min;
  }

  /* Log axes: ``data.logY`` / ``data.logX`` (the page's toggle) override the server's
   * suggestion ``log_y`` / ``log_x``. */
  function logAxes(opt, data) {
    const logY = data.logY !== undefined ? data.logY : !!data.log_y;
    const logX = data.logX !== undefined ? data.logX : !!data.log_x;
    if (logY) opt.yAxis.type = "log";
    if (logX && opt.xAxis.type === "value") opt.xAxis.type = "log";
    return logY;
  }

  function stepsPanel(data, panel, floor) {
    const yName = data.name + (data.mode === "runs" ? "" : " (mean" + (data.err !== "none" ? " ± " + data.err : "") + ")");
    const opt = base(panel.title, "step", yName, "value");
    const logY = logAxes(opt, data);
    const named = new Set();
    panel.series.forEach((s, i) => {
      const color = PALETTE[(s.color !== undefined ? s.color : i) % PALETTE.length];
      const points = logY ? s.points.map((p) => [p[0], p[1] > 0 ? p[1] : null, p[2], p[3]]) : s.points;
      opt.series.push({ type: "line", name: s.name, data: points, showSymbol: points.length < 40,
        itemStyle: { color }, lineStyle: { color, width: data.mode === "runs" ? 1 : 1.5 }, z: 2 });
      if (data.mode !== "runs") opt.series.push(band(s.name, points, color, logY ? floor : null));
      named.add(s.name);
    });
    opt.legend.data = Array.from(named);
    if (data.group) opt.legend.formatter = (name) => name;  // names read "lr=0.01"
    return opt;
  }

  function stepsOptions(data) {
    const panels = data.panels || [{ title: "", series: data.series || [] }];
    const floor = positiveMin(panels);
    return panels.map((panel) => stepsPanel(data, panel, floor));
  }

  /* Parallel coordinates over case means (the sweep view): one axis per param, then the
   * metric; lines coloured by the metric. */
  /* Parallel coordinates; ``paramAxes``: "" (each param axis as the server suggests),
   * "linear", or "log" (every numeric param axis whose values are all positive). */
  function parallelOption(view, logMetric, paramAxes) {
    const axes = view.axes.map((a, i) => {
      const axis = { dim: i, name: a.name, nameLocation: "start" };
      if (a.categorical) return Object.assign(axis, { type: "category", data: a.values });
      const positive = a.values.length && a.values.every((v) => typeof v === "number" && v > 0);
      const log = paramAxes === "log" ? positive : paramAxes === "linear" ? false : a.log;
      if (log) return Object.assign(axis, { type: "log" });
      return Object.assign(axis, { type: "value", scale: true });
    });
    const m = view.axes.length;
    axes.push({ dim: m, name: view.metric, nameLocation: "start", type: logMetric ? "log" : "value", scale: true });
    const data = view.cases.filter((c) => c.mean !== null).map((c) =>
      ({ value: c.values.map((v, i) => view.axes[i].categorical ? String(v) : v).concat([c.mean]), case: c }));
    const means = data.map((d) => d.value[m]);
    return {
      animation: false,
      parallelAxis: axes,
      parallel: { left: 60, right: 110, top: 40, bottom: 40 },
      visualMap: { type: "continuous", dimension: m, min: Math.min(...means), max: Math.max(...means),
        right: 0, top: "middle", calculable: true, precision: 3, text: [view.metric, ""],
        inRange: { color: ["#3b4cc0", "#b8b8b8", "#b40426"] } },
      tooltip: { trigger: "item", formatter: (p) => {
        const c = p.data.case;
        if (!c) return "";
        return escapeText(c.label + ": " + fmt(c.mean) + (c.ci95 !== null ? " ± " + fmt(c.ci95) + " (95% CI)" : "")
          + ", n=" + c.n + (c.nan ? ", " + c.nan + " NaN" : ""));
      } },
      series: [{ type: "parallel", name: "cases", data: data, z: 3, lineStyle: { width: 2, opacity: 0.8 } }]
        .concat(view.runs ? [seedSeries(view)] : []),
    };
  }

  /* One thin line per seed replicate (view.runs: param values then the metric). */
  function seedSeries(view) {
    const m = view.axes.length;
    const data = view.runs.map((r) => ({
      value: r.map((v, i) => (i < m && view.axes[i].categorical ? String(v) : v)),
      run: true,
    }));
    return { type: "parallel", name: "seeds", data: data, z: 2, silent: true,
      lineStyle: { width: 1, opacity: 0.25 } };
  }

  function runStepsOption(name, points, xName) {
    const opt = base("", xName || "step", name, "value");
    opt.legend = { show: false };
    opt.grid.bottom = 40;
    opt.series.push({ type: "line", name: name, data: points, showSymbol: points.length < 40 });
    return opt;
  }

  /* Number of data series drawn (error bars and bands are helpers, not counted). */
  function seriesCount(option) {
    return option.series.filter((s) => s.type !== "custom").length;
  }

  function draw(el, option) {
    if (typeof echarts === "undefined") {
      el.textContent = "chart library missing";
      return null;
    }
    const old = echarts.getInstanceByDom(el);
    if (old) old.dispose();
    const chart = echarts.init(el, null, { renderer: el.dataset.renderer || "canvas" });
    chart.setOption(option);
    el.dataset.series = String(seriesCount(option));
    return chart;
  }

  /* Options for the plot data: one per panel (xy with facets), else one. */
  function options(data) {
    if (data.kind === "xy") return data.panels.map((p) => xyOption(data, p));
    if (data.kind === "hist") return [histOption(data)];
    if (data.kind === "steps") return stepsOptions(data);
    return [];
  }

  window.metalabCharts = { draw, options, parallelOption, runStepsOption, seriesCount, fmt };
})();

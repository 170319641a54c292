// Plot builder: Y vs X (grouped, faceted, aggregated with error bars), histograms, stepped
// curves. Every choice lives in the URL, so a view can be shared.
import { h, api, enc, select, columnLabel } from "./dom.js";
import { setCrumbs, expHref, go } from "./nav.js";

export async function plotPage(main, eid, params, still) {
  setCrumbs([{ label: "experiments", href: "#/" }, { label: eid, href: expHref(eid) }, { label: "plot" }]);
  const cols = await api(`/api/experiments/${enc(eid)}/columns`);
  if (!still()) return null;
  const numericMetrics = cols.metrics.filter((c) => cols.numeric.includes(c));
  if (cols.numeric.includes("duration_ms")) numericMetrics.push("duration_ms");
  const state = {
    kind: params.get("kind") || "xy",
    x: params.get("x") || cols.params[0] || numericMetrics[0] || "",
    y: params.get("y") || "",
    group: params.get("group") || "",
    facet: params.get("facet") || "",
    agg: params.get("agg") || "mean",
    err: params.get("err") || "ci95",
    mode: params.get("mode") || "mean",
    bins: params.get("bins") || "20",
    logy: params.get("logy") || "auto",
    logx: params.get("logx") || "auto",
    smooth: params.get("smooth") || "0",
  };
  if (!state.y) state.y = state.kind === "steps" ? cols.stepped[0] || "" : numericMetrics[0] || "";
  const set = (patch) => {
    if (patch.kind) state.y = "";
    Object.assign(state, patch);
    const next = new URLSearchParams(params);
    for (const [k, v] of Object.entries(state)) if (v) next.set(k, v); else next.delete(k);
    go(["e", eid, "plot"], next);
  };
  const none = [["", "(none)"]];
  const logChoice = (key, name) => label(name, select([["auto", "auto"], ["on", "log"], ["off", "linear"]], state[key], (v) => set({ [key]: v }), { id: key }));
  const label = (text, control) => h("label", {}, text, control);
  const options = (list) => list.map((c) => [c, columnLabel(c)]);
  const controls = [label("plot", select([["xy", "Y vs X"], ["hist", "histogram"], ["steps", "stepped metric"]], state.kind, (v) => set({ kind: v }), { id: "kind" }))];
  if (state.kind === "xy") {
    controls.push(
      label("y", select(options(numericMetrics), state.y, (v) => set({ y: v }), { id: "y" })),
      label("x", select(options([...cols.params, ...numericMetrics]), state.x, (v) => set({ x: v }), { id: "x" })),
      label("group by", select(none.concat(options(cols.params)), state.group, (v) => set({ group: v }), { id: "group" })),
      label("facet by", select(none.concat(options(cols.params)), state.facet, (v) => set({ facet: v }), { id: "facet" })),
      label("replicates", select([["mean", "mean"], ["median", "median"], ["min", "min"], ["max", "max"], ["none", "every run"]], state.agg, (v) => set({ agg: v }), { id: "agg" })),
      label("error bars", select([["ci95", "95% CI (t)"], ["sem", "SEM"], ["std", "std"], ["none", "none"]], state.err, (v) => set({ err: v }), { id: "err" })),
      logChoice("logx", "x axis"), logChoice("logy", "y axis"));
  } else if (state.kind === "hist") {
    controls.push(
      label("metric", select(options(numericMetrics), state.y, (v) => set({ y: v }), { id: "y" })),
      label("group by", select(none.concat(options(cols.params)), state.group, (v) => set({ group: v }), { id: "group" })),
      label("bins", select(["10", "20", "40", "80"].map((b) => [b, b]), state.bins, (v) => set({ bins: v }), { id: "bins" })));
  } else {
    controls.push(
      label("stepped metric", select(cols.stepped.map((c) => [c, c]), state.y, (v) => set({ y: v }), { id: "y" })),
      label("curves", select([["mean", "mean ± band per case"], ["runs", "each run (≤ 100)"]], state.mode, (v) => set({ mode: v }), { id: "mode" })),
      label("group by", select(none.concat(options(cols.params)), state.group, (v) => set({ group: v }), { id: "group" })),
      label("facet by", select(none.concat(options(cols.params)), state.facet, (v) => set({ facet: v }), { id: "facet" })),
      label("band", select([["ci95", "95% CI (t)"], ["sem", "SEM"], ["std", "std"], ["none", "none"]], state.err, (v) => set({ err: v }), { id: "err" })),
      label("smoothing", select([["0", "none"], ["0.6", "0.6"], ["0.8", "0.8"], ["0.95", "0.95"]], state.smooth, (v) => set({ smooth: v }), { id: "smooth" })),
      logChoice("logy", "y axis"));
  }
  const view = new URLSearchParams();
  for (const key of ["q", "status", "filter"]) if (params.get(key)) view.set(key, params.get(key));
  const filters = JSON.parse(params.get("filter") || "[]");
  const note = filters.length || params.get("status") || params.get("q")
    ? h("p", { class: "muted" }, "runs of the table view: ", filters.map((f) => `${columnLabel(f[0])} ${f[1]} ${f[2]}`).join(", "),
      params.get("status") ? ` status = ${params.get("status")}` : "", " · ", h("a", { href: expHref(eid, "", view) }, "back to the table"))
    : null;
  const charts = h("div", { class: "charts", id: "charts" });
  const message = h("p", { class: "muted" });
  main.replaceChildren(h("div", {}, h("h1", {}, "Plot"), h("div", { class: "card" }, h("div", { class: "controls" }, controls), note),
    message, charts));

  let last = "";
  const load = async () => {
    if (!state.y) {
      message.textContent = state.kind === "steps" ? "This experiment has no stepped metrics." : "No numeric metric to plot.";
      return;
    }
    const q = new URLSearchParams(view);
    for (const [k, v] of Object.entries(state)) if (v) q.set(k, v);
    const data = await api(`/api/experiments/${enc(eid)}/plot?${q}`);
    const text = JSON.stringify(data);
    if (text + state.logy + state.logx === last || !still()) return;
    last = text + state.logy + state.logx;
    if (state.logy !== "auto") data.logY = state.logy === "on";
    if (state.logx !== "auto") data.logX = state.logx === "on";
    const opts = window.metalabCharts.options(data);
    const boxes = opts.map(() => h("div", { class: "chart" }));
    charts.replaceChildren(...boxes);
    message.textContent = opts.length && opts.some((o) => o.series.length) ? "" : "Nothing to plot for this view yet.";
    opts.forEach((o, i) => window.metalabCharts.draw(boxes[i], o));
  };
  await load();
  return load;
}

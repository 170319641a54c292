// The seed-aware sweep view: parallel coordinates over case means, parameter importance
// against seed noise, and a paired comparison of two cases on their shared seeds. The
// numbers come from the server (metalab_smk/ui/sweep.py, the same as Results').
import { h, api, enc, fmt, select } from "./dom.js";
import { setCrumbs, expHref, go } from "./nav.js";

const pct = (v) => (v === null || v === undefined ? "—" : (100 * v).toFixed(1) + " %");
const num = (v) => (v === null || v === undefined ? "—" : fmt(v));

function importanceTable(view) {
  const rows = view.importance.map((r) => h("tr", { class: r.below_noise ? "below" : "" },
    h("td", {}, r.source),
    h("td", { class: "muted" }, r.kind),
    h("td", { class: "num" }, pct(r.share)),
    h("td", { class: "num" }, h("span", { class: "share", style: `width:${Math.round(100 * (r.share || 0))}px` })),
    h("td", { class: "num" }, num(r.F)),
    h("td", { class: "num" }, r.p === null ? "—" : r.p < 1e-4 ? "< 0.0001" : fmt(r.p)),
    h("td", {}, r.below_noise ? "below seed noise" : r.below_noise === false ? "above seed noise" : "")));
  return h("table", { id: "importance" },
    h("thead", {}, h("tr", {}, ["source", "", "share of variance", "", "F", "p", "vs seed noise"].map((t) => h("th", {}, t)))),
    h("tbody", {}, rows));
}

function pairText(r) {
  return [
    h("p", {}, h("b", {}, `${r.case_b} − ${r.case_a}: ${fmt(r.diff)}`),
      ` (95% CI ${fmt(r.ci95_low)} … ${fmt(r.ci95_high)}, paired t on ${r.pairs} shared seeds, p = ${num(r.p)})`),
    h("p", { class: "muted" }, `bootstrap 95% CI ${fmt(r.boot_low)} … ${fmt(r.boot_high)}; `,
      `means ${fmt(r.mean_a)} and ${fmt(r.mean_b)}`, r.unpaired ? `; ${r.unpaired} runs without a partner left out` : ""),
  ];
}

export async function sweepPage(main, eid, params, still) {
  setCrumbs([{ label: "experiments", href: "#/" }, { label: eid, href: expHref(eid) }, { label: "sweep" }]);
  const q = new URLSearchParams();
  for (const key of ["metric", "q", "status", "filter"]) if (params.get(key)) q.set(key, params.get(key));
  const seeds = params.get("seeds") === "on";
  const [view, lines] = await Promise.all([api(`/api/experiments/${enc(eid)}/sweep?${q}`),
    seeds ? api(`/api/experiments/${enc(eid)}/sweep/seeds?${q}`) : null]);
  if (!still()) return null;
  if (lines) view.runs = lines.runs;
  const state = { metric: view.metric, log: params.get("log") || (view.metric_log ? "on" : "off"),
    a: params.get("a") || "", b: params.get("b") || "", seeds: seeds ? "on" : "", paxes: params.get("paxes") || "" };
  const set = (patch) => {
    const next = new URLSearchParams(params);
    for (const [k, v] of Object.entries({ ...state, ...patch })) if (v) next.set(k, v); else next.delete(k);
    if (patch.metric) { next.delete("log"); next.delete("a"); next.delete("b"); }
    go(["e", eid, "sweep"], next);
  };
  const ranked = view.cases.filter((c) => c.mean !== null).sort((x, y) => y.mean - x.mean);
  const labels = view.cases.map((c) => [c.label, c.label]);
  if (!state.a && ranked.length > 1) state.a = ranked[1].label;
  if (!state.b && ranked.length) state.b = ranked[0].label;
  const label = (text, control) => h("label", {}, text, control);
  const chart = h("div", { class: "chart", id: "parallel" });
  const pair = h("div", { id: "pair" });
  const shown = view.cases.length < view.cases_total ? ` (first ${view.cases.length} of ${view.cases_total} cases)` : "";
  main.replaceChildren(h("div", {},
    h("h1", {}, "Sweep"),
    h("div", { class: "card" }, h("div", { class: "controls" },
      label("metric", select(view.metrics.map((m) => [m, m]), state.metric, (v) => set({ metric: v }), { id: "sweep-metric" })),
      label("metric axis", select([["off", "linear"], ["on", "log"]], state.log, (v) => set({ log: v }), { id: "sweep-log" })),
      label("param axes", select([["", "auto"], ["linear", "linear"], ["log", "log"]], state.paxes,
        (v) => set({ paxes: v }), { id: "sweep-paxes" })),
      label("lines", select([["", "case means"], ["on", "case means + seeds"]], state.seeds,
        (v) => set({ seeds: v }), { id: "sweep-seeds" })))),
    h("h2", {}, `Case means of ${view.metric}${shown}`),
    h("p", { class: "muted" }, "one line per param case, coloured by its mean over the seed replicates; hover a line for its 95% CI",
      view.runs ? `; thin lines: the ${view.runs.length} seed replicates` : ""),
    h("div", { class: "card" }, chart),
    h("h2", {}, "Parameter importance against seed noise"),
    h("p", { class: "muted", id: "importance-method" }, `method: ${view.method}. `,
      "Share of the variance of every run; interactions: what the main effects leave between cases; seed noise: the variance between seed replicates of one case",
      ` (sd ${num(view.noise_sd)}).`),
    h("div", { class: "card scroll" }, importanceTable(view)),
    h("h2", {}, "Paired comparison on shared seeds"),
    h("div", { class: "card" }, h("div", { class: "controls" },
      label("case A", select(labels, state.a, (v) => set({ a: v }), { id: "case-a" })),
      label("case B", select(labels, state.b, (v) => set({ b: v }), { id: "case-b" }))), pair)));
  requestAnimationFrame(() => window.metalabCharts.draw(chart, window.metalabCharts.parallelOption(view, state.log === "on", state.paxes)));
  chart.dataset.cases = String(view.cases.length);
  if (state.a && state.b) {
    const pq = new URLSearchParams({ metric: view.metric, a: state.a, b: state.b });
    try {
      const result = await api(`/api/experiments/${enc(eid)}/sweep/compare?${pq}`);
      if (still()) pair.replaceChildren(...pairText(result));
    } catch (err) {
      if (still()) pair.replaceChildren(h("p", { class: "error" }, String(err.message || err)));
    }
  }
  return null;
}

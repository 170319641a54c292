// The versions view: this version of an experiment against another version of it, case
// by case (delta of the means with Welch's 95% CI). The numbers come from the server
// (metalab_smk/ui/versions.py, the same as Results.compare_versions').
import { h, api, enc, fmt, select } from "./dom.js";
import { setCrumbs, expHref, go } from "./nav.js";

function deltaTable(view) {
  const rows = view.rows.map((r) => {
    const clear = r.ci95_low !== null && r.ci95_high !== null && (r.ci95_low > 0 || r.ci95_high < 0);
    return h("tr", { class: clear ? "diff" : "" },
      h("td", {}, r.case),
      h("td", { class: "num" }, String(r.n_a)), h("td", { class: "num" }, fmt(r.mean_a)),
      h("td", { class: "num" }, String(r.n_b)), h("td", { class: "num" }, fmt(r.mean_b)),
      h("td", { class: "num" }, h("b", {}, fmt(r.delta))),
      h("td", { class: "num" }, r.ci95_low === null ? "—" : `${fmt(r.ci95_low)} … ${fmt(r.ci95_high)}`),
      h("td", { class: "num" }, r.p === null ? "—" : r.p < 1e-4 ? "< 0.0001" : fmt(r.p)));
  });
  return h("table", { id: "versions" },
    h("thead", {}, h("tr", {}, ["case", `n ${view.other}`, `mean ${view.other}`, `n ${view.this}`,
      `mean ${view.this}`, "delta", "95% CI (Welch)", "p"].map((t) => h("th", {}, t)))),
    h("tbody", {}, rows));
}

export async function versionsPage(main, eid, params, still) {
  setCrumbs([{ label: "experiments", href: "#/" }, { label: eid, href: expHref(eid) }, { label: "versions" }]);
  const q = new URLSearchParams();
  for (const key of ["other", "metric"]) if (params.get(key)) q.set(key, params.get(key));
  const view = await api(`/api/experiments/${enc(eid)}/versions?${q}`);
  if (!still()) return null;
  if (!view.other) {
    main.replaceChildren(h("div", {}, h("h1", {}, "Versions"),
      h("p", { class: "muted", id: "no-versions" }, `no other version of ${eid} in this dashboard`)));
    return null;
  }
  const set = (patch) => {
    const next = new URLSearchParams(params);
    for (const [k, v] of Object.entries(patch)) next.set(k, v);
    if (patch.other) next.delete("metric");
    go(["e", eid, "versions"], next);
  };
  const chart = h("div", { class: "chart", id: "versions-chart" });
  const clear = view.rows.filter((r) => r.ci95_low > 0 || r.ci95_high < 0).length;
  main.replaceChildren(h("div", {},
    h("h1", {}, `${view.this} against ${view.other}`),
    h("div", { class: "card" }, h("div", { class: "controls" },
      h("label", {}, "other version", select(view.versions.map((v) => [v, v]), view.other, (v) => set({ other: v }), { id: "other-version" })),
      h("label", {}, "metric", select(view.metrics.map((m) => [m, m]), view.metric, (v) => set({ metric: v }), { id: "versions-metric" })))),
    h("p", { class: "muted", id: "versions-summary" },
      `${view.rows.length} cases both versions ran; delta = ${view.this} − ${view.other} of the mean of ${view.metric} over the seed replicates; `,
      `${clear} with a 95% CI that excludes 0 (highlighted)`),
    h("div", { class: "card" }, chart),
    h("div", { class: "card scroll" }, deltaTable(view))));
  requestAnimationFrame(() => window.metalabCharts.draw(chart, window.metalabCharts.options(view.plot)[0]));
  return null;
}

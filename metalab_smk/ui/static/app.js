// The dashboard: a hash-routed single page over the JSON API (see server.py).
import { h, api, enc, fmt, statusBadge, kvTable, ago, select, columnLabel } from "./dom.js";
import { onRender, route, go, setCrumbs, expHref } from "./nav.js";
import { runPage } from "./run.js";
import { plotPage } from "./plot.js";
import { sweepPage } from "./sweep.js";
import { versionsPage } from "./versions.js";

const main = document.getElementById("main");
const liveBox = document.getElementById("live");
const selected = new Map(); // experiment -> Set of run IDs chosen for comparison
let refresher = null; // the current page's live refresh
let renderToken = 0;

function showError(err) {
  main.replaceChildren(h("div", { class: "card" }, h("p", { class: "error" }, String(err.message || err)),
    h("a", { href: "#/" }, "back to the experiments")));
}

async function render() {
  const token = ++renderToken;
  refresher = null;
  const { parts, params } = route();
  const still = () => token === renderToken;
  try {
    if (parts.length === 0) await experimentsPage(still);
    else if (parts[0] === "e" && parts.length === 2) await runsPage(parts[1], params, still);
    else if (parts[0] === "e" && parts[2] === "run") {
      refresher = await runPage(main, parts[1], parts[3], still);
    } else if (parts[0] === "e" && parts[2] === "plot") {
      refresher = await plotPage(main, parts[1], params, still);
    } else if (parts[0] === "e" && parts[2] === "sweep") {
      refresher = await sweepPage(main, parts[1], params, still);
    } else if (parts[0] === "e" && parts[2] === "versions") {
      await versionsPage(main, parts[1], params, still);
    } else if (parts[0] === "e" && parts[2] === "compare") await comparePage(parts[1], params, still);
    else throw new Error("no such page");
  } catch (err) {
    if (still()) showError(err);
  }
}

// ---------------------------------------------------------------- experiments
function progressBar(e) {
  const pct = (n) => (e.total ? (100 * n) / e.total : 0) + "%";
  return h("div", { class: "bar", title: `${e.done} done, ${e.running} running, ${e.failed} failed` },
    h("span", { class: "ok", style: "width:" + pct(e.done) }),
    h("span", { class: "run", style: "width:" + pct(e.running) }),
    h("span", { class: "bad", style: "width:" + pct(e.failed) }));
}

async function experimentsPage(still) {
  setCrumbs([{ label: "experiments" }]);
  const count = (n) => h("td", { class: "num" }, n ?? "?"); // null: not known (no live state)
  const draw = (data) => {
    // several stores (or the index): a store column; the key in links names the store
    const stores = data.experiments.some((e) => e.store);
    const rows = data.experiments.map((e) => h("tr", { dataset: { experiment: e.key || e.experiment_id } },
      stores ? h("td", { class: "mono store" }, e.store) : null,
      h("td", {}, h("a", { href: expHref(e.key || e.experiment_id) }, e.name)),
      h("td", { class: "mono" }, e.version),
      h("td", {}, progressBar(e)),
      count(e.done), count(e.running), count(e.failed), count(e.pending), count(e.total),
      h("td", {}, ago(e.last_activity_ns)),
      h("td", {}, e.live === false ? h("span", { class: "error live-note" }, e.live_note)
        : e.error ? h("span", { class: "error" }, e.error) : e.head || "—"),
      h("td", { class: "muted" }, e.description)));
    const columns = ["experiment", "version", "progress", "done", "running", "failed",
      "pending", "total", "last activity", "head", "description"];
    return h("div", {},
      h("h1", {}, "Experiments"),
      h("p", { class: "muted", id: "source" }, stores ? "stores: " : "store: ", data.source),
      data.experiments.length ? h("div", { class: "scroll" }, h("table", { id: "experiments" },
        h("thead", {}, h("tr", {}, (stores ? ["store", ...columns] : columns).map((c) => h("th", {}, c)))),
        h("tbody", {}, rows))) : h("p", {}, "No compiled experiments here yet."));
  };
  let last = "";
  const load = async () => {
    const data = await api("/api/experiments");
    const text = JSON.stringify(data);
    if (text !== last && still()) {
      last = text;
      main.replaceChildren(draw(data));
    }
  };
  await load();
  refresher = load;
}

// ---------------------------------------------------------------- runs table
function viewParams(params) {
  const keep = new URLSearchParams();
  for (const key of ["q", "status", "filter"]) if (params.get(key)) keep.set(key, params.get(key));
  return keep;
}

async function runsPage(eid, params, still) {
  setCrumbs([{ label: "experiments", href: "#/" }, { label: eid }]);
  const [cols, manifest] = await Promise.all([
    api(`/api/experiments/${enc(eid)}/columns`), api(`/api/experiments/${enc(eid)}/manifest`)]);
  const filters = JSON.parse(params.get("filter") || "[]");
  const chosen = selected.get(eid) || new Set();
  selected.set(eid, chosen);
  const update = (patch) => {
    const next = new URLSearchParams(params);
    for (const [k, v] of Object.entries(patch)) {
      if (v === "" || v === null || v === undefined) next.delete(k);
      else next.set(k, v);
    }
    if (!("offset" in patch)) next.delete("offset");
    go(["e", eid], next);
  };
  const setFilters = (list) => update({ filter: list.length ? JSON.stringify(list) : "" });

  // toolbar
  const search = h("input", { type: "search", placeholder: "run ID prefix", value: params.get("q") || "",
    onchange: (e) => update({ q: e.target.value.trim() }), size: 18, id: "search" });
  const status = select([["", "any status"], ["success", "success"], ["failed", "failed"], ["cancelled", "cancelled"]],
    params.get("status") || "", (v) => update({ status: v }), { id: "status" });
  const allColumns = [...cols.params, ...cols.metrics, ...cols.record.filter((c) => c !== "run_id")];
  const fCol = select(allColumns.map((c) => [c, columnLabel(c)]), allColumns[0], () => {}, { id: "filter-column" });
  const fOp = select(["=", "!=", "<", "<=", ">", ">=", "~"].map((o) => [o, o === "~" ? "contains" : o]), "=", () => {}, { id: "filter-op" });
  const fValue = h("input", { placeholder: "value", size: 10, id: "filter-value" });
  const addFilter = h("button", { id: "filter-add", onclick: () => {
    if (fValue.value === "") return;
    setFilters([...filters, [fCol.value, fOp.value, fValue.value]]);
  } }, "add filter");
  const chips = filters.map((f, i) => h("span", { class: "chip" }, `${columnLabel(f[0])} ${f[1]} ${f[2]}`,
    h("button", { title: "remove", onclick: () => setFilters(filters.filter((_, j) => j !== i)) }, "×")));

  const current = (params.get("columns") || "").split(",").filter(Boolean);
  const menu = h("div", { class: "menu", hidden: true });
  const picker = h("span", { class: "picker" }, h("button", { id: "columns-button", onclick: () => { menu.hidden = !menu.hidden; } }, "columns ▾"), menu);
  const apiQuery = () => {
    const q = new URLSearchParams(params);
    q.set("limit", params.get("limit") || "50");
    return q;
  };
  const exportHref = (format) => {
    const q = viewParams(params);
    q.set("format", format);
    if (current.length) q.set("columns", current.join(","));
    return `/api/experiments/${enc(eid)}/export?${q}`;
  };
  const compareButton = h("button", { id: "compare", disabled: chosen.size < 2,
    onclick: () => go(["e", eid, "compare"], new URLSearchParams({ ids: [...chosen].join(",") })) },
    `compare selected (${chosen.size})`);
  const plotLink = h("a", { href: expHref(eid, "/plot", viewParams(params)) }, "plot this view");
  const sweepLink = h("a", { href: expHref(eid, "/sweep", viewParams(params)), id: "sweep-link" }, "sweep view");
  const versionsLink = h("a", { href: expHref(eid, "/versions"), id: "versions-link" }, "versions");

  const progressBox = h("div", { id: "in-progress" });
  const tableBox = h("div", { class: "scroll" });
  const summary = h("span", { class: "muted", id: "count" });
  const pager = h("div", { class: "pager" });

  main.replaceChildren(h("div", {},
    h("h1", {}, manifest.experiment_id || eid),
    manifest.store ? h("p", { class: "muted", id: "store" }, "store: ", manifest.store) : null,
    manifestCard(manifest),
    h("div", { class: "toolbar" }, search, status, h("span", { class: "muted" }, "filter:"), fCol, fOp, fValue, addFilter,
      picker, h("a", { href: exportHref("csv"), id: "export-csv", download: "" }, "CSV"),
      h("a", { href: exportHref("parquet"), id: "export-parquet", download: "" }, "parquet"), plotLink, sweepLink, versionsLink, compareButton),
    chips.length ? h("div", { class: "toolbar" }, chips) : null,
    h("div", { class: "toolbar" }, summary),
    progressBox, tableBox, pager));

  let last = "";
  let lastProgress = "";
  const load = async () => {
    const [data, progress] = await Promise.all([
      api(`/api/experiments/${enc(eid)}/runs?${apiQuery()}`),
      api(`/api/experiments/${enc(eid)}/in_progress`)]);
    const progressText = JSON.stringify(progress);
    if (progressText !== lastProgress && still()) {
      lastProgress = progressText;
      progressBox.replaceChildren(...(progress.total ? [h("p", { class: "toolbar" },
        h("span", { class: "muted" }, `in progress (or killed) without a record: ${progress.total}`),
        progress.runs.slice(0, 12).map((id) => h("a", { class: "mono", href: expHref(eid, "/run/" + enc(id)) }, id)),
        progress.total > 12 ? h("span", { class: "muted" }, "…") : null)] : []));
    }
    const text = JSON.stringify(data);
    if (text === last || !still()) return;
    last = text;
    // column picker reflects the columns shown
    const shown = new Set(data.columns);
    menu.replaceChildren(...[["params", cols.params], ["metrics", cols.metrics], ["record", cols.record]].map(([title, list]) =>
      h("div", {}, h("strong", {}, title), list.filter((c) => c !== "run_id").map((c) => h("label", {},
        h("input", { type: "checkbox", checked: shown.has(c), onchange: (e) => {
          const next = data.columns.filter((x) => x !== "run_id" && x !== c);
          if (e.target.checked) next.push(c);
          update({ columns: next.join(","), offset: params.get("offset") || "" });
        } }), " ", columnLabel(c))))));
    const sort = params.get("sort") || "";
    const desc = params.get("desc") === "1";
    const head = h("tr", {}, h("th", {}, ""), data.columns.map((c) => h("th", {
      class: "sortable" + (sort === c ? " sorted" + (desc ? " desc" : "") : ""),
      title: "sort by " + c,
      onclick: () => update({ sort: c, desc: sort === c && !desc ? "1" : "" }),
    }, columnLabel(c))));
    const numeric = new Set(cols.numeric);
    const body = data.rows.map((row) => {
      const runId = row[0];
      return h("tr", { dataset: { run: runId } },
        h("td", {}, h("input", { type: "checkbox", checked: chosen.has(runId), onchange: (e) => {
          if (e.target.checked) chosen.add(runId); else chosen.delete(runId);
          compareButton.disabled = chosen.size < 2;
          compareButton.textContent = `compare selected (${chosen.size})`;
        } })),
        row.map((v, i) => {
          const c = data.columns[i];
          if (c === "run_id") return h("td", { class: "mono" }, h("a", { href: expHref(eid, "/run/" + enc(v)) }, v));
          if (c === "status") return h("td", {}, statusBadge(v));
          return h("td", { class: numeric.has(c) ? "num" : "" }, fmt(v));
        }));
    });
    tableBox.replaceChildren(h("table", { id: "runs" }, h("thead", {}, head), h("tbody", {}, body)));
    const end = Math.min(data.offset + data.limit, data.total);
    const n = (v) => v.toLocaleString("en-US");
    summary.textContent = `runs ${n(data.total ? data.offset + 1 : 0)}–${n(end)} of ${n(data.total)}` +
      (data.total !== data.all ? ` (filtered from ${n(data.all)})` : "");
    const page = (offset) => update({ offset: String(Math.max(0, offset)) });
    pager.replaceChildren(
      h("button", { disabled: data.offset === 0, onclick: () => page(data.offset - data.limit), id: "prev" }, "‹ prev"),
      h("button", { disabled: end >= data.total, onclick: () => page(data.offset + data.limit), id: "next" }, "next ›"),
      select(["25", "50", "100", "250"].map((n) => [n, n + " per page"]), String(data.limit), (v) => update({ limit: v })));
  };
  await load();
  refresher = load;
}

function manifestCard(m) {
  const spec = m.params || {};
  const summary = `${m.n_runs ?? "?"} runs = ${m.n_cases ?? "?"} param cases × ${m.replicates ?? "?"} replicates` +
    (m.git_commit ? ` · git ${String(m.git_commit).slice(0, 10)}` : "") + (m.description ? ` · ${m.description}` : "");
  return h("details", { class: "card", id: "manifest" }, h("summary", {}, "manifest: ", summary),
    kvTable([
      ["params", h("pre", { class: "light" }, JSON.stringify(spec, null, 1))],
      ["operation", m.operation], ["root seed", m.root_seed], ["tags", (m.tags || []).join(", ")],
      ["code fingerprint", m.code_fp], ["context fingerprint", m.context_fp],
      ["git commit", m.git_commit], ["resources", m.resources], ["metadata", m.metadata],
      ["metalab version", m.metalab_version], ["compiled at", m.compiled_at],
    ]));
}

// ---------------------------------------------------------------- compare
async function comparePage(eid, params, still) {
  setCrumbs([{ label: "experiments", href: "#/" }, { label: eid, href: expHref(eid) }, { label: "compare" }]);
  const data = await api(`/api/experiments/${enc(eid)}/compare?ids=${enc(params.get("ids") || "")}`);
  if (!still()) return;
  const onlyDiff = params.get("diff") === "1";
  const boxes = data.steps.map(() => h("div", { class: "chart" }));
  const rows = data.rows.filter((r) => !onlyDiff || r.differs).map((r) => h("tr", { class: r.differs ? "diff" : "" },
    h("td", { class: "muted" }, r.section), h("td", {}, r.key),
    r.values.map((v) => h("td", { class: "mono" }, fmt(v)))));
  const toggle = h("label", {}, h("input", { type: "checkbox", checked: onlyDiff, id: "only-diff", onchange: (e) => {
    const next = new URLSearchParams(params);
    if (e.target.checked) next.set("diff", "1"); else next.delete("diff");
    go(["e", eid, "compare"], next);
  } }), " only differences");
  main.replaceChildren(h("div", {},
    h("h1", {}, `Compare ${data.run_ids.length} runs`),
    h("div", { class: "toolbar" }, toggle, h("span", { class: "muted" }, `${data.rows.filter((r) => r.differs).length} rows differ (highlighted)`)),
    h("div", { class: "scroll" }, h("table", { id: "compare-table" },
      h("thead", {}, h("tr", {}, h("th", {}, ""), h("th", {}, ""), data.run_ids.map((id) =>
        h("th", { class: "mono" }, h("a", { href: expHref(eid, "/run/" + enc(id)) }, id))))),
      h("tbody", {}, rows))),
    data.steps.length ? h("div", { class: "card", id: "compare-steps" }, h("h2", {}, "Stepped metrics"),
      h("div", { class: "charts" }, boxes)) : null));
  data.steps.forEach((d, i) => window.metalabCharts.draw(boxes[i], window.metalabCharts.options(d)[0]));
}

// ---------------------------------------------------------------- live refresh
setInterval(async () => {
  if (!liveBox.checked || !refresher || document.hidden) return;
  try { await refresher(); } catch (err) { /* keep the last view; the next tick retries */ }
}, Number(new URLSearchParams(location.search).get("refresh_ms")) || 3000);

onRender(render);
window.addEventListener("hashchange", render);
render();

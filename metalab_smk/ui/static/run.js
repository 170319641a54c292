// Run detail: params, metrics, seed, provenance, stepped curves, data, artifacts, log, error.
import { h, api, enc, fmt, statusBadge, kvTable } from "./dom.js";
import { setCrumbs, expHref, rerender } from "./nav.js";

function flatten(obj, prefix, out) {
  for (const [k, v] of Object.entries(obj || {})) {
    if (v && typeof v === "object" && !Array.isArray(v)) flatten(v, prefix + k + ".", out);
    else out.push([prefix + k, v]);
  }
  return out;
}

function arrayTable(preview) {
  const rows = preview.rows.map((row, i) => h("tr", {}, h("td", { class: "muted" }, i),
    (Array.isArray(row) ? row : [row]).map((v) => h("td", { class: "num mono" }, fmt(v)))));
  const width = preview.rows.length && Array.isArray(preview.rows[0]) ? preview.rows[0].length : 1;
  return h("div", {},
    h("p", { class: "muted" }, `shape ${JSON.stringify(preview.shape)}, ${preview.dtype}` +
      (preview.stats ? `, min ${fmt(preview.stats.min)}, mean ${fmt(preview.stats.mean)}, max ${fmt(preview.stats.max)}` : "") +
      (preview.truncated ? " (first rows/columns)" : "")),
    h("div", { class: "scroll", style: "max-height:360px" }, h("table", { class: "array" },
      h("thead", {}, h("tr", {}, h("th", {}, ""), Array.from({ length: width }, (_, j) => h("th", {}, j)))),
      h("tbody", {}, rows))));
}

function arrayPlot(preview) {
  // a 1-D numeric array (or one column) is also drawn as a line
  const values = preview.rows.map((r) => (Array.isArray(r) ? r[0] : r));
  const box = h("div", { class: "chart small" });
  requestAnimationFrame(() => window.metalabCharts.draw(box,
    window.metalabCharts.runStepsOption("value", values.map((v, i) => [i, v]), "index")));
  return box;
}

function previewOf(base, preview) {
  if (preview.type === "array") {
    const oneD = preview.shape.length === 1 && preview.stats;
    return oneD ? h("div", {}, arrayPlot(preview), arrayTable(preview)) : arrayTable(preview);
  }
  if (preview.type === "json" || preview.type === "text") {
    return h("pre", { class: "light" }, preview.text + (preview.truncated ? "\n… (truncated)" : ""));
  }
  if (preview.type === "image") return h("img", { src: base + "/raw", alt: preview.name });
  return h("p", { class: "muted" }, preview.reason || "no preview");
}

export async function runPage(main, eid, runId, still) {
  setCrumbs([{ label: "experiments", href: "#/" }, { label: eid, href: expHref(eid) }, { label: "run " + runId }]);
  const base = `/api/experiments/${enc(eid)}/runs/${enc(runId)}`;
  const [detail, log, manifest] = await Promise.all([
    api(base), api(base + "/log"), api(`/api/experiments/${enc(eid)}/manifest`)]);
  if (!still()) return null;
  if (!detail.record) return inProgress(main, base, runId, log, still);
  const r = detail.record;
  const seed = r.seed || {};
  const prov = r.provenance || {};
  const cards = [];

  if (r.error) {
    cards.push(h("div", { class: "card", id: "error" }, h("h2", {}, "Error"),
      h("p", { class: "error" }, `${r.error.type || "Error"}: ${r.error.message || ""}`),
      r.error.traceback ? h("pre", {}, r.error.traceback) : null));
  }
  const params = Object.entries(r.params_resolved || {});
  const metrics = Object.entries(r.metrics || {});
  cards.push(h("div", { class: "grid2" },
    h("div", { class: "card", id: "params" }, h("h2", {}, "Params"), params.length ? kvTable(params) : h("p", { class: "muted" }, "none")),
    h("div", { class: "card", id: "metrics" }, h("h2", {}, "Metrics"), metrics.length ? kvTable(metrics) : h("p", { class: "muted" }, "none")),
    h("div", { class: "card", id: "seed" }, h("h2", {}, "Run"), kvTable([
      ["run ID", r.run_id], ["status", statusBadge(r.status)], ["run index", r.run_index],
      ["root seed", seed.root_seed], ["replicate", seed.replicate_index],
      ["started", r.started_at], ["finished", r.finished_at], ["duration (ms)", r.duration_ms],
      ["tags", (r.tags || []).join(", ")], ["notes", r.notes],
    ])),
    h("div", { class: "card", id: "provenance" }, h("h2", {}, "Provenance"), kvTable([
      ...flatten(prov, "", []),
      ["git commit (at compile)", manifest.git_commit],
      ["compiled at", manifest.compiled_at],
    ]))));

  const stepNames = Object.keys(detail.steps || {});
  const chartBoxes = stepNames.map((name) => h("div", { class: "chart small", dataset: { metric: name } }));
  if (stepNames.length) {
    cards.push(h("div", { class: "card", id: "steps" }, h("h2", {}, "Stepped metrics"),
      h("div", { class: "charts" }, chartBoxes)));
  }
  if (detail.checkpoint) {  // kept across the run's attempts (capture.checkpoint_dir)
    const attempts = (prov.extra || {}).attempts || [];
    cards.push(h("div", { class: "card", id: "checkpoint" }, h("h2", {}, "Checkpoint"), kvTable([
      ["directory", `checkpoints/${r.run_id}/`],
      ["files", detail.checkpoint.files],
      ["size", `${(detail.checkpoint.bytes / 1e6).toFixed(1)} MB (${detail.checkpoint.bytes} bytes)`],
      ["attempts", attempts.length || 1],
    ])));
  }
  if ((r.warnings || []).length) {
    cards.push(h("div", { class: "card" }, h("h2", {}, "Warnings"),
      h("pre", { class: "light" }, r.warnings.map((w) => `${w.category || ""}: ${w.message || JSON.stringify(w)}`).join("\n"))));
  }
  if (detail.data.length) {
    const out = h("div", {});
    cards.push(h("div", { class: "card", id: "data" }, h("h2", {}, "Data"),
      h("div", { class: "toolbar" }, detail.data.map((name) => h("button", { onclick: async () => {
        const d = await api(`${base}/data/${enc(name)}`);
        out.replaceChildren(h("h3", {}, name), h("pre", { class: "light" }, d.text));
      } }, name))), out));
  }
  const artifacts = r.artifacts || [];
  if (artifacts.length) {
    cards.push(h("div", { class: "card", id: "artifacts" }, h("h2", {}, "Artifacts"),
      artifacts.map((a) => {
        const box = h("div", { class: "artifact" });
        const url = `${base}/artifacts/${enc(a.name)}`;
        const load = async () => { box.replaceChildren(previewOf(url, await api(url))); };
        const row = h("div", { dataset: { artifact: a.name } },
          h("div", { class: "toolbar" }, h("strong", {}, a.name), h("span", { class: "muted" },
            `${a.kind || ""} · ${a.format || ""}` + (a.size_bytes != null ? ` · ${a.size_bytes} bytes` : "")),
), box);
        load().catch((e) => box.replaceChildren(h("p", { class: "error" }, String(e.message))));
        return row;
      })));
  }
  const quiet = "(nothing: the run printed and logged nothing)";  // a quiet success keeps no log
  const shown = (l) => l.text || (l.missing ? quiet : "(empty)");
  const logPre = h("pre", { id: "log" }, shown(log));
  const logNote = h("span", { class: "muted" });
  const noteOf = (l) => (l.partial ? "in progress" : "") + (l.truncated ? " (last 256 KiB)" : "");
  logNote.textContent = noteOf(log);
  cards.push(h("div", { class: "card" }, h("h2", {}, "Log ", logNote), logPre));

  main.replaceChildren(h("div", {},
    h("h1", {}, h("span", { class: "mono" }, r.run_id), " ", statusBadge(r.status)), cards));
  stepNames.forEach((name, i) => window.metalabCharts.draw(chartBoxes[i], window.metalabCharts.runStepsOption(name, detail.steps[name])));

  return async () => {
    const next = await api(base + "/log");
    if (still() && shown(next) !== logPre.textContent) {
      logPre.textContent = shown(next);
      logNote.textContent = noteOf(next);
    }
  };
}

// A run with a .partial log and no record yet: its live log; the full page once it ends.
function inProgress(main, base, runId, log, still) {
  const logPre = h("pre", { id: "log" }, log.text || "(no output yet)");
  main.replaceChildren(h("div", {},
    h("h1", {}, h("span", { class: "mono" }, runId), " ", statusBadge("running")),
    h("p", { class: "muted" }, "No record yet: the run is in progress, or its process was killed " +
      "(metalab status tells which). The log below follows it live."),
    h("div", { class: "card" }, h("h2", {}, "Log (in progress)"), logPre)));
  return async () => {
    const [detail, next] = await Promise.all([api(base), api(base + "/log")]);
    if (!still()) return;
    if (detail.record) rerender();
    else if (next.text !== logPre.textContent) logPre.textContent = next.text;
  };
}

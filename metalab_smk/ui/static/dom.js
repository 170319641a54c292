// DOM and fetch helpers. Every value goes in as a text node or attribute, never as HTML.

export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function fmt(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number") {
    if (Number.isInteger(value)) return String(value);
    return String(+value.toPrecision(6));
  }
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

export function statusBadge(status) {
  return h("span", { class: "status " + String(status || "") }, status || "pending");
}

export class ApiError extends Error {}

export async function api(path) {
  const response = await fetch(path, { headers: { accept: "application/json" } });
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new ApiError(body.error || response.statusText);
  return body;
}

export function enc(s) {
  return encodeURIComponent(s);
}

export function kvTable(entries, className) {
  return h("table", { class: "kv " + (className || "") },
    h("tbody", {}, entries.map(([k, v]) =>
      h("tr", {}, h("td", {}, k), h("td", { class: typeof v === "number" ? "num mono" : "mono" }, v instanceof Node ? v : fmt(v))))));
}

export function ago(ns) {
  if (!ns) return "—";
  const seconds = Math.max(0, Date.now() / 1000 - ns / 1e9);
  if (seconds < 60) return Math.round(seconds) + " s ago";
  if (seconds < 3600) return Math.round(seconds / 60) + " min ago";
  if (seconds < 86400) return Math.round(seconds / 3600) + " h ago";
  return new Date(ns / 1e6).toISOString().slice(0, 16).replace("T", " ");
}

export function select(options, value, onchange, extra) {
  return h("select", { onchange: (e) => onchange(e.target.value), ...(extra || {}) },
    options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)));
}

export function columnLabel(column) {
  return column.startsWith("param_") ? column.slice(6) : column;
}

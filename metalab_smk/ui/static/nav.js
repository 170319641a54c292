// Navigation shared by the pages: the hash route, links, crumbs, and a re-render hook
// (app.js registers its render), so no page module imports app.js.
import { h, enc } from "./dom.js";

let renderer = () => {};

export function onRender(render) {
  renderer = render;
}

export function rerender() {
  renderer();
}

export function route() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(query || "") };
}

export function go(parts, params) {
  const path = "#/" + parts.map(enc).join("/");
  const query = params && params.toString();
  location.hash = query ? path + "?" + query : path;
}

export function setCrumbs(items) {
  document.getElementById("crumbs").replaceChildren(...items.flatMap((item, i) => [
    ...(i ? [h("span", {}, "/")] : []),
    item.href ? h("a", { href: item.href }, item.label) : h("span", {}, item.label),
  ]));
}

export function expHref(eid, rest, params) {
  const q = params && params.toString();
  return "#/e/" + enc(eid) + (rest || "") + (q ? "?" + q : "");
}

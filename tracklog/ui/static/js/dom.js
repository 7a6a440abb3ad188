// Building the page: every piece of data goes in as text (a Text node, textContent),
// never as markup, so a param value "<img src=x onerror=...>" shows as those characters.

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "href") el.setAttribute("href", safeHref(v));
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(visible(String(c))));
  }
}

// Control characters (C0 but tab and newline, DEL, C1) and Unicode's direction marks,
// overrides and isolates are shown as \u{XXXX}: a name "evil\u202Egpj.exe" must not read
// as "evilexe.jpg", and a value must not reorder the text around it.
const HIDDEN = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/g;
export const visible = (s) =>
  s.replace(HIDDEN, (ch) => `\\u{${ch.codePointAt(0).toString(16).toUpperCase().padStart(4, "0")}}`);

// Links the page makes are to this server only: a path, never a scheme a value could smuggle in.
function safeHref(v) {
  const s = String(v);
  return s.startsWith("/") && !s.startsWith("//") ? s : "#";
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function badge(status) {
  return h("span", { class: `badge status-${status}`, dataset: { status } }, status);
}

export function table(headers, rows, props = {}) {
  return h("table", props,
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows));
}

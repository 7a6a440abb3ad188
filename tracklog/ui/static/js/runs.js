// The runs page: what `tracklog runs` shows, filtered with the `where` language, sorted by
// any column, paginated, live (status and columns of running runs update in place).
// The page's state lives in its URL, so a view can be bookmarked or shared.

import { ApiError, getJSON, runPage, stream } from "./api.js";
import { badge, clear, h } from "./dom.js";
import * as fmt from "./fmt.js";

function readState() {
  const q = new URLSearchParams(location.search);
  return {
    experiment: q.get("experiment") || "",
    where: q.get("where") || "",
    sort: q.get("sort") || "",
    page: Number(q.get("page") || 1),
    columns: q.getAll("columns"),
  };
}

function writeState(st) {
  const q = new URLSearchParams();
  for (const k of ["experiment", "where", "sort"]) if (st[k]) q.set(k, st[k]);
  if (st.page > 1) q.set("page", String(st.page));
  for (const c of st.columns) q.append("columns", c);
  const s = q.toString();
  history.replaceState(null, "", s ? `/?${s}` : "/");
}

export async function runsPage(app) {
  const st = readState();
  const selected = new Set();
  let data = null, es = null;

  const where = h("input", { id: "where", type: "search", size: 60, placeholder: "metrics.loss < 0.1 AND params.opt = 'adam'", value: st.where });
  const whereErr = h("pre", { id: "where-error", class: "error", hidden: true });
  const expSel = h("select", { id: "experiment" });
  const colsBox = h("details", { class: "columns" }, h("summary", {}, "columns"));
  let colsOpen = false;
  colsBox.addEventListener("toggle", () => { colsOpen = colsBox.open; });
  const tableBox = h("div", { class: "table-box" });
  const pager = h("div", { class: "pager" });
  const compareBtn = h("button", { id: "compare", disabled: true, onclick: () => {
    const q = new URLSearchParams();
    for (const id of selected) q.append("runs", id);
    location.href = `/compare?${q}`;
  } }, "compare selected");

  where.addEventListener("keydown", (e) => { if (e.key === "Enter") { st.where = where.value; st.page = 1; load(); } });
  expSel.addEventListener("change", () => { st.experiment = expSel.value; st.page = 1; load(); });

  function showFilterError(e) {
    whereErr.hidden = false;
    if (e instanceof ApiError && typeof e.position === "number" && e.message.startsWith("bad filter")) {
      // The message names the position; the caret points at it under the text as typed.
      whereErr.textContent = `${e.message.split("\n")[0]}\n${st.where}\n${" ".repeat(e.position)}^`;
    } else whereErr.textContent = String(e.message || e);
  }

  function header(col, label) {
    const [field, dir] = st.sort.split(/\s+/);
    const arrow = field === col ? (dir === "ASC" ? " ▲" : " ▼") : "";
    return h("th", { class: "sortable", dataset: { column: col }, onclick: () => {
      st.sort = field === col && dir !== "ASC" ? `${col} ASC` : `${col} DESC`;
      load();
    } }, label + arrow);
  }

  function cells(r) {
    return [
      h("td", {}, h("a", { href: runPage(r.id), class: "mono" }, r.id)),
      h("td", {}, r.name || "-"),
      ...(data.experiments.length > 1 ? [h("td", {}, r.experiment || "-")] : []),
      h("td", { class: "status" }, badge(r.status)),
      h("td", {}, fmt.time(r.start_time)),
      h("td", {}, fmt.duration(r.start_time, r.end_time || r.last_time)),
      ...data.columns.map((c) => h("td", { class: "num" }, fmt.value(r.columns[c]))),
    ];
  }

  function row(r) {
    const box = h("input", { type: "checkbox", checked: selected.has(r.id), onchange: (e) => {
      e.target.checked ? selected.add(r.id) : selected.delete(r.id);
      compareBtn.disabled = selected.size < 1;
      compareBtn.textContent = `compare selected (${selected.size})`;
    } });
    return h("tr", { dataset: { run: r.id } }, h("td", {}, box), cells(r));
  }

  function render() {
    clear(expSel, h("option", { value: "" }, "all experiments"), data.experiments.map((e) => h("option", { value: e }, e)));
    expSel.value = st.experiment;
    const several = data.experiments.length > 1;
    const heads = [h("th", {}), header("id", "id"), header("name", "name"),
      ...(several ? [header("experiment", "experiment")] : []), header("status", "status"),
      header("start_time", "start"), h("th", {}, "duration"),
      ...data.columns.map((c) => header(c, c.replace(/`/g, "")))];
    clear(tableBox, h("table", { id: "runs", class: "runs" }, h("thead", {}, h("tr", {}, heads)),
      h("tbody", {}, data.runs.map(row))));
    if (!data.runs.length) tableBox.append(h("p", { class: "muted" }, "no runs match"));
    clear(pager,
      h("button", { disabled: st.page <= 1, onclick: () => { st.page--; load(); } }, "‹ newer"),
      ` page ${data.page} of ${data.pages} · ${data.total} ${data.total === 1 ? "run" : "runs"} `,
      h("button", { disabled: st.page >= data.pages, onclick: () => { st.page++; load(); } }, "older ›"));
    const chosen = new Set(data.columns);
    const pick = (c) => h("label", { class: "pick" }, h("input", { type: "checkbox", checked: chosen.has(c), onchange: (e) => {
      const now = st.columns.length ? st.columns : [...data.columns];
      st.columns = e.target.checked ? [...now.filter((x) => x !== c), c] : now.filter((x) => x !== c);
      load();
    } }), c.replace(/`/g, ""));
    const add = h("input", { id: "add-column", size: 30, placeholder: "any field: metrics.loss.min" });
    add.addEventListener("keydown", (e) => {
      if (e.key !== "Enter" || !add.value.trim()) return;
      st.columns = [...(st.columns.length ? st.columns : data.columns).filter((x) => x !== add.value.trim()), add.value.trim()];
      load();
    });
    clear(colsBox, h("summary", {}, `columns (${data.columns.length})`),
      ...["params", "metrics", "tags"].map((g) => h("div", { class: "pick-group" }, h("b", {}, g), data.available[g].map(pick))),
      h("div", { class: "pick-group" }, h("b", {}, "add"), add, h("span", { class: "muted" }, " a metric's min, max, count, first_step, last_step or last_time: metrics.KEY.min")));
    colsBox.open = colsOpen;
  }

  let good = { ...st };
  async function load() {
    try {
      data = await getJSON("/api/runs", { experiment: st.experiment, where: st.where, sort: st.sort, page: st.page, columns: st.columns });
    } catch (e) {
      showFilterError(e);
      // Keep the filter as typed (to be fixed); a bad column or sort goes back to what worked.
      Object.assign(st, { columns: good.columns, sort: good.sort });
      return;
    }
    good = { ...st };
    writeState(st);
    whereErr.hidden = true;
    render();
    listen();
  }

  // Rows of running runs update in place; new runs reload the first page.
  function listen() {
    const key = data.columns.join("\n");
    if (es && es.key === key) return;
    if (es) es.close();
    es = stream(`/api/events?${new URLSearchParams(data.columns.map((c) => ["columns", c]))}`, {
      row: (r) => {
        const tr = tableBox.querySelector(`tr[data-run="${CSS.escape(r.id)}"]`);
        if (tr) tr.replaceWith(row(r));
      },
      added: () => { if (st.page === 1) load(); },
    });
    es.key = key;
  }

  clear(app, h("div", { class: "toolbar" }, expSel, where, compareBtn), whereErr, colsBox, tableBox, pager);
  await load();
}

// The compare page: the selected runs' metrics overlaid per key; params and tags that
// differ between them highlighted.

import { getJSON, runPage, runPath } from "./api.js";
import { addChart, controls, fromHistory } from "./chart.js";
import { badge, clear, h, table } from "./dom.js";
import * as fmt from "./fmt.js";
import { MAX_POINTS } from "./run.js";

// A run's label: its name, and the end of its id (the random part) when another compared run shares it.
function labels(runs) {
  const count = {};
  for (const r of runs) count[r.name || r.id] = (count[r.name || r.id] || 0) + 1;
  return runs.map((r) => (count[r.name || r.id] > 1 ? `${r.name} (…${r.id.slice(-6)})` : r.name || r.id));
}

function diffTable(runs, field, cls) {
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r[field])))].sort();
  if (!keys.length) return h("p", { class: "muted" }, "none");
  const rows = keys.map((k) => {
    // Own keys only: `in` would find "constructor" or "toString" on every object.
    const vals = runs.map((r) => (Object.hasOwn(r[field], k) ? fmt.value(r[field][k]) : "-"));
    const differs = new Set(vals).size > 1;
    return h("tr", { class: differs ? "differs" : null, dataset: { key: k } },
      h("td", { class: "mono" }, k), vals.map((v) => h("td", { class: "mono" }, v)));
  });
  return table(["key", ...labels(runs)], rows, { class: cls });
}

export async function comparePage(app) {
  const q = new URLSearchParams(location.search);
  const ids = q.getAll("runs").flatMap((v) => v.split(",")).filter(Boolean);
  if (!ids.length) { clear(app, h("p", {}, "Select runs on the ", h("a", { href: "/" }, "runs page"), " to compare them.")); return; }
  let runs;
  try {
    runs = await Promise.all(ids.map((id) => getJSON(runPath(id))));
  } catch (e) {
    clear(app, h("pre", { class: "error" }, String(e.message || e)));
    return;
  }
  const opts = { x: "step", logY: false, smoothing: 0, legend: true, order: runs.map((r) => r.id) };
  const names = labels(runs);
  const label = Object.fromEntries(runs.map((r, i) => [r.id, names[i]]));
  const charts = new Map();
  const box = h("div", { class: "charts" });
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))].sort();

  async function load(key, start = null, end = null) {
    const c = charts.get(key);
    await Promise.all(runs.filter((r) => Object.hasOwn(r.metrics, key)).map(async (r) => {
      const toX = (v) => (v === null ? null : opts.x === "time" ? Number(v) + (r.start_time || 0) : v);
      const hist = await getJSON(`${runPath(r.id)}/history`, { key, start: toX(start), end: toX(end), max_points: MAX_POINTS, x: opts.x });
      c.set(r.id, label[r.id], r.start_time, fromHistory(hist));
    }));
  }

  for (const key of keys) charts.set(key, addChart(box, key, opts, (lo, hi) => load(key, lo, hi)));
  clear(app,
    h("h1", {}, `Comparing ${runs.length} runs`),
    table(["run", "status", "experiment", "start", "duration"], runs.map((r) => h("tr", {},
      h("td", {}, h("a", { href: runPage(r.id) }, label[r.id])), h("td", {}, badge(r.status)),
      h("td", {}, r.experiment || "-"), h("td", {}, fmt.time(r.start_time)),
      h("td", {}, fmt.duration(r.start_time, r.end_time || r.last_time))))),
    h("h2", {}, "Params"), diffTable(runs, "params", "params"),
    h("h2", {}, "Tags"), diffTable(runs, "tags", "tags"),
    h("h2", {}, "Metrics"),
    controls(opts, (what) => { for (const [k, c] of charts) (what === "x" ? load(k) : c.draw()); }),
    box);
  await Promise.all(keys.map((k) => load(k)));
}

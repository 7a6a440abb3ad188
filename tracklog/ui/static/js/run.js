// The run page: status, sessions, params, tags, artifacts, and a chart per metric key,
// live while the run is running. Order matters for liveness: the stream is opened
// first; once it says "ready" the histories are fetched, and a streamed point is kept
// only if it was logged after the newest point its history held (so none is lost or doubled).

import { getJSON, runPath, stream } from "./api.js";
import { addChart, controls, fromHistory } from "./chart.js";
import { badge, clear, h, table } from "./dom.js";
import * as fmt from "./fmt.js";

export const MAX_POINTS = 2000;

export function sessionsTable(run) {
  const rows = run.sessions.map((s, i) => h("tr", {},
    h("td", {}, String(i + 1)), h("td", { class: "mono" }, s.session), h("td", {}, badge(s.ended)),
    h("td", {}, fmt.time(s.start_time)), h("td", {}, fmt.time(s.end_time)),
    h("td", {}, s.resume ? `resumed at step ${fmt.value(s.resume_step)}` : "new"),
    h("td", {}, s.superseded ? String(s.superseded) : "-"),
    h("td", {}, [s.host, s.pid].filter((x) => x !== null && x !== undefined).join(" pid ") || "-"),
    h("td", { class: "mono" }, sourceText(s.source)),
    h("td", {}, s.error ? `${s.error.type || "error"}: ${s.error.message || ""}` : s.signal || "-")));
  return table(["#", "session", "ended", "start", "end", "resume", "superseded", "host", "source", "error"], rows, { class: "sessions" });
}

function sourceText(src) {
  if (!src) return "-";
  const parts = [];
  if (Array.isArray(src.argv)) parts.push(src.argv.join(" "));
  if (src.git && src.git.commit) parts.push(`git ${String(src.git.commit).slice(0, 12)}${src.git.dirty ? " (dirty)" : ""}${src.git.branch ? ` on ${src.git.branch}` : ""}`);
  return parts.join("  ·  ") || "-";
}

export function kvTable(obj, cls, highlight) {
  const keys = Object.keys(obj).sort();
  if (!keys.length) return h("p", { class: "muted" }, "none");
  return table(["key", "value"], keys.map((k) => h("tr", { class: highlight && highlight.has(k) ? "differs" : null },
    h("td", { class: "mono" }, k), h("td", { class: "mono" }, fmt.value(obj[k])))), { class: cls });
}

function artifactsTable(run) {
  const names = Object.keys(run.artifacts);
  if (!names.length) return h("p", { class: "muted" }, "none");
  return table(["name", "size", "sha256"], names.map((n) => {
    const a = run.artifacts[n];
    const href = `${runPath(run.id)}/artifacts/${n.split("/").map(encodeURIComponent).join("/")}`;
    return h("tr", {}, h("td", {}, h("a", { href, download: n.split("/").pop() }, n)),
      h("td", {}, fmt.bytes(a.size)), h("td", { class: "mono sha" }, a.sha256));
  }), { class: "artifacts" });
}

function header(run) {
  return h("div", { class: "run-head" },
    h("h1", {}, run.name || run.id, " ", badge(run.status)),
    h("p", { class: "muted" }, `id ${run.id}`, run.experiment ? ` · experiment ${run.experiment}` : "",
      ` · started ${fmt.time(run.start_time)} · ${fmt.duration(run.start_time, run.end_time || run.last_time)}`,
      run.dropped ? ` · ${run.dropped} points dropped by the writer` : ""),
    run.error ? h("pre", { class: "error" }, `${run.error.type || "error"}: ${run.error.message || ""}`) : null);
}

export async function runPage(app, id) {
  const opts = { x: "step", logY: false, smoothing: 0, legend: false };
  const charts = new Map(); // key -> Chart
  const head = h("div"), meta = h("div", { class: "meta" }), chartsBox = h("div", { class: "charts" });
  let run = null;

  // A chart's history; points streamed while it is fetched are held, then kept if newer.
  async function loadChart(key, start = null, end = null) {
    const c = charts.get(key);
    const toX = (v) => (v === null ? null : opts.x === "time" ? Number(v) + (run.start_time || 0) : v);
    c.loading = (c.loading || 0) + 1;
    c.held = c.held || [];
    try {
      const r = await getJSON(`${runPath(id)}/history`, { key, start: toX(start), end: toX(end), max_points: MAX_POINTS, x: opts.x });
      c.lastTime = r.last_time;
      c.set(run.id, run.name, run.start_time, fromHistory(r));
    } finally {
      c.loading--;
    }
    if (!c.loading) { const held = c.held; c.held = []; for (const pts of held) appendNew(key, pts); }
  }

  function appendNew(key, pts) {
    const c = charts.get(key);
    const keep = { step: [], value: [], time: [] };
    for (let i = 0; i < pts.step.length; i++) {
      if (c.lastTime === null || c.lastTime === undefined || pts.time[i] > c.lastTime) {
        keep.step.push(pts.step[i]); keep.value.push(pts.value[i]); keep.time.push(pts.time[i]);
      }
    }
    if (keep.step.length && !c.append(run.id, keep)) loadChart(key); // grew too long: decimate again
  }

  function onPoints(batch) {
    let unknown = false;
    for (const [key, pts] of Object.entries(batch)) {
      const c = charts.get(key);
      // No chart yet: its history, fetched after this point arrived, will hold it.
      if (!c) unknown = true;
      else if (c.loading) c.held.push(pts);
      else appendNew(key, pts);
    }
    if (unknown) refreshMeta();
  }

  function ensureCharts() {
    const added = [];
    for (const key of Object.keys(run.metrics)) {
      if (charts.has(key)) continue;
      charts.set(key, addChart(chartsBox, key, opts, (lo, hi) => loadChart(key, lo, hi)));
      added.push(key);
    }
    return added;
  }

  function renderMeta() {
    clear(head, header(run));
    clear(meta,
      h("h2", {}, "Sessions"), sessionsTable(run),
      h("div", { class: "cols" },
        h("div", {}, h("h2", {}, "Params"), kvTable(run.params, "params")),
        h("div", {}, h("h2", {}, "Tags"), kvTable(run.tags, "tags"))),
      h("h2", {}, "Artifacts"), artifactsTable(run));
  }

  async function refresh(all) {
    run = await getJSON(runPath(id));
    renderMeta();
    const added = ensureCharts();
    await Promise.all((all ? [...charts.keys()] : added).map((k) => loadChart(k)));
  }

  let metaTimer = null;
  function refreshMeta() {
    clearTimeout(metaTimer);
    metaTimer = setTimeout(() => refresh(false), 200);
  }

  try {
    run = await getJSON(runPath(id));
  } catch (e) {
    clear(app, h("h1", {}, "No such run"), h("pre", { class: "error" }, String(e.message || e)));
    return;
  }
  clear(app, head, h("h2", {}, "Metrics"), controls(opts, (what) => {
    for (const [k, c] of charts) (what === "x" ? loadChart(k) : c.draw());
  }), chartsBox, meta);

  stream(`${runPath(id)}/events`, {
    ready: () => refresh(true).catch((e) => clear(app, h("pre", { class: "error" }, String(e.message || e)))),
    points: onPoints,
    event: (ev) => {
      // A resume supersedes the points after its step: draw the histories again.
      if (ev.kind === "run_start" && ev.value && ev.value.resume) refresh(true);
      else refreshMeta();
    },
    reset: () => { for (const k of charts.keys()) loadChart(k); },
  });
}

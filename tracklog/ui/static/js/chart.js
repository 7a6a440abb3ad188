// One chart per metric key, drawn with plotly.js: a line per run, NaN and inf as red
// markers along the top (NaN, inf) or bottom (-inf) edge, never as a broken line.
// The x axis is the step or the wall time in seconds since the run started.

import { h, visible } from "./dom.js";
import { num } from "./fmt.js";

const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
export const LIVE_CAP = 20000; // points a series may grow to live before it is fetched decimated again

// plotly reads a few HTML tags in names and titles: entities keep a key's text literal.
export const plotText = (s) => visible(String(s)).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

export function emptySeries() {
  return { step: [], value: [], time: [], badStep: [], badValue: [], badTime: [] };
}

// A history response (or a live batch) into a series' arrays; values may be "NaN" etc.
export function addPoints(s, pts) {
  for (let i = 0; i < pts.step.length; i++) {
    const v = num(pts.value[i]);
    if (Number.isFinite(v)) { s.step.push(pts.step[i]); s.value.push(v); s.time.push(pts.time[i]); }
    else { s.badStep.push(pts.step[i]); s.badValue.push(v); s.badTime.push(pts.time[i]); }
  }
}

export function fromHistory(r) {
  const s = emptySeries();
  s.step = r.step; s.value = r.value; s.time = r.time;
  addPoints(s, { step: r.nonfinite.step, value: r.nonfinite.value, time: r.nonfinite.time });
  s.total = r.total; s.sampled = r.sampled; s.lastTime = r.last_time;
  return s;
}

// TensorBoard's smoothing: an exponential moving average, debiased at the start.
export function smooth(values, weight) {
  if (!(weight > 0)) return values;
  const out = new Array(values.length);
  let last = 0, n = 0;
  for (let i = 0; i < values.length; i++) {
    last = last * weight + (1 - weight) * values[i];
    n++;
    out[i] = last / (1 - Math.pow(weight, n));
  }
  return out;
}

export class Chart {
  constructor(parent, key, opts) {
    this.key = key;
    this.opts = opts; // shared: { x: "step"|"time", logY, smoothing, legend }
    this.runs = new Map(); // run id -> { name, start, series }
    this.onZoom = null;
    this.el = h("div", { class: "chart", dataset: { key } });
    parent.append(this.el);
    this.pending = false;
  }

  set(runId, name, start, series) {
    this.runs.set(runId, { name, start, series });
    this.draw();
  }

  append(runId, pts) {
    const r = this.runs.get(runId);
    if (!r) return false;
    addPoints(r.series, pts);
    this.draw();
    return r.series.step.length <= LIVE_CAP;
  }

  xs(r, steps, times) {
    return this.opts.x === "time" ? times.map((t) => t - (r.start || 0)) : steps;
  }

  traces() {
    const out = [];
    let i = 0;
    for (const [runId, r] of this.runs) {
      // One colour per run on every chart: by its place in opts.order when there is one.
      const at = this.opts.order ? this.opts.order.indexOf(runId) : -1;
      const s = r.series, color = COLORS[(at >= 0 ? at : i) % COLORS.length];
      i++;
      const name = plotText(r.name || runId);
      const x = this.xs(r, s.step, s.time);
      const w = this.opts.smoothing;
      if (w > 0) {
        out.push({ x, y: s.value, type: "scatter", mode: "lines", name, legendgroup: runId, showlegend: false,
          line: { color, width: 1 }, opacity: 0.25, hoverinfo: "skip" });
      }
      out.push({ x, y: smooth(s.value, w), type: "scatter", mode: "lines", name, legendgroup: runId,
        line: { color, width: 1.5 }, meta: { run: runId } });
      if (s.badStep.length) {
        out.push({ x: this.xs(r, s.badStep, s.badTime), y: s.badValue.map((v) => (v < 0 ? 0 : 1)),
          yaxis: "y2", type: "scatter", mode: "markers", name: `${name} nan/inf`, legendgroup: runId, showlegend: false,
          text: s.badValue.map((v) => (Number.isNaN(v) ? "NaN" : v > 0 ? "inf" : "-inf")),
          hovertemplate: "%{text} at %{x}<extra></extra>",
          marker: { color: "#d62728", symbol: "x", size: 8 }, meta: { nonfinite: true } });
      }
    }
    return out;
  }

  draw() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.render(); });
  }

  render() {
    const legend = this.opts.legend && this.runs.size > 1;
    const layout = {
      title: { text: plotText(this.key), font: { size: 13 }, x: 0.02 },
      margin: { l: 50, r: 10, t: 30, b: legend ? 45 : 35 },
      height: legend ? 300 : 260,
      showlegend: legend,
      legend: { orientation: "h", x: 0, y: -0.32, yanchor: "top" }, // below the axis title
      xaxis: { title: { text: this.opts.x === "time" ? "seconds since start" : "step" } },
      yaxis: { type: this.opts.logY ? "log" : "linear" },
      yaxis2: { overlaying: "y", range: [-0.05, 1.05], visible: false, fixedrange: true },
      uirevision: `${this.opts.x}`,
    };
    const first = !this.el.classList.contains("js-plotly-plot");
    const drawn = Plotly.react(this.el, this.traces(), layout, { displaylogo: false, responsive: true });
    if (first && this.runs.size && !performance.getEntriesByName("tracklog:first-chart").length) {
      // For tools/bench_ui.py: when the page's first chart with data was drawn.
      drawn.then(() => performance.getEntriesByName("tracklog:first-chart").length || performance.mark("tracklog:first-chart"));
    }
    if (first) {
      this.el.on("plotly_relayout", (ev) => {
        if (!this.onZoom) return;
        // A drag gives range[0] and range[1]; a relayout call may give the range whole.
        const range = ev["xaxis.range"] || [ev["xaxis.range[0]"], ev["xaxis.range[1]"]];
        if (ev["xaxis.autorange"]) this.onZoom(null, null);
        else if (range[0] !== undefined && range[1] !== undefined) this.onZoom(range[0], range[1]);
      });
    }
  }
}

// "train/loss" -> "train"; a key without a slash is in the group "metrics".
export function groupOf(key) {
  const i = key.indexOf("/");
  return i > 0 ? key.slice(0, i) : "metrics";
}

// A chart for ``key`` in ``box``, inside the section of its group (made on first use).
export function addChart(box, key, opts, onZoom) {
  const g = groupOf(key);
  let grid = box.querySelector(`section[data-group="${CSS.escape(g)}"] .grid`);
  if (!grid) {
    const sec = h("section", { class: "group", dataset: { group: g } }, h("h3", {}, g), h("div", { class: "grid" }));
    box.append(sec);
    grid = sec.querySelector(".grid");
  }
  const c = new Chart(grid, key, opts);
  c.onZoom = onZoom;
  return c;
}

export function controls(opts, onChange) {
  const xSel = h("select", { id: "x-axis", onchange: (e) => { opts.x = e.target.value; onChange("x"); } },
    h("option", { value: "step" }, "step"), h("option", { value: "time" }, "wall time"));
  xSel.value = opts.x;
  const logBox = h("input", { type: "checkbox", id: "log-y", onchange: (e) => { opts.logY = e.target.checked; onChange("log"); } });
  const smoothIn = h("input", { type: "range", id: "smoothing", min: 0, max: 0.99, step: 0.01, value: opts.smoothing });
  const smoothOut = h("output", {}, String(opts.smoothing));
  smoothIn.addEventListener("input", (e) => { opts.smoothing = Number(e.target.value); smoothOut.textContent = e.target.value; onChange("smoothing"); });
  return h("div", { class: "controls" },
    h("label", {}, "x axis ", xSel), h("label", {}, logBox, " log y"), h("label", {}, "smoothing ", smoothIn, " ", smoothOut));
}

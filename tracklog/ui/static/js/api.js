// The JSON API, the page's only source of data.

export class ApiError extends Error {
  constructor(status, payload) {
    super(payload && payload.error ? payload.error : `HTTP ${status}`);
    this.status = status;
    this.position = payload ? payload.position : undefined;
  }
}

export async function getJSON(path, params) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === "") continue;
    for (const one of Array.isArray(v) ? v : [v]) url.searchParams.append(k, one);
  }
  const res = await fetch(url, { headers: { accept: "application/json" } });
  const body = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, body);
  return body;
}

export const runPath = (id) => `/api/runs/${encodeURIComponent(id)}`;
export const runPage = (id) => `/runs/${encodeURIComponent(id)}`;

// A live stream; shows the header's live dot while it is connected.
export function stream(path, handlers) {
  const es = new EventSource(path);
  const dot = document.getElementById("live");
  es.onopen = () => dot && dot.classList.add("on");
  es.onerror = () => dot && dot.classList.remove("on");
  for (const [name, fn] of Object.entries(handlers)) {
    es.addEventListener(name, (e) => fn(JSON.parse(e.data)));
  }
  return es;
}

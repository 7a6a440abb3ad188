// Numbers and times the way the CLI prints them. Non-finite numbers arrive as the
// strings "NaN", "Infinity", "-Infinity" (the API's one rule), which Number() reads.

export const num = (v) => (typeof v === "string" ? Number(v) : v);

export function value(v) {
  if (v === null || v === undefined) return "-";
  if (v === "NaN" || v === "Infinity" || v === "-Infinity") return v === "NaN" ? "nan" : v === "Infinity" ? "inf" : "-inf";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : Number(v.toPrecision(6)).toString();
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

const pad = (n) => String(n).padStart(2, "0");

export function time(t) {
  if (t === null || t === undefined || typeof t !== "number") return "-";
  const d = new Date(t * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function duration(start, end) {
  if (typeof start !== "number") return "-";
  const secs = Math.max(0, (typeof end === "number" ? end : Date.now() / 1000) - start);
  const hh = Math.floor(secs / 3600), mm = Math.floor((secs % 3600) / 60), ss = Math.floor(secs % 60);
  return hh ? `${hh}h${pad(mm)}m` : mm ? `${mm}m${pad(ss)}s` : `${ss}s`;
}

export function bytes(n) {
  if (typeof n !== "number") return "-";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

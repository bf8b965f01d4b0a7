// Tiny DOM helpers. Text always goes through textContent: nothing from the API is parsed as HTML.
const SVG_NS = "http://www.w3.org/2000/svg";

function apply(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.setAttribute("class", v);
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function fmtTime(unix) {
  if (!unix) return "—";
  const d = new Date(unix * 1000);
  return d.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function fmtAgo(unix) {
  if (!unix) return "";
  const s = Math.round(Date.now() / 1000 - unix);
  if (s < 5) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  seconds = Math.max(0, Math.round(seconds));
  if (seconds < 60) return `${seconds} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${seconds % 60} s`;
  const hrs = Math.floor(m / 60);
  return `${hrs} h ${m % 60} min`;
}

export function fmtNum(v, digits = 3) {
  if (v === null || v === undefined || v === "") return "—";
  if (typeof v !== "number") return String(v);
  if (!Number.isFinite(v)) return String(v);
  if (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5)) return v.toExponential(2);
  return Number(v.toFixed(digits)).toString();
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

const STATUS = {
  queued: { icon: "◷", tone: "info", label: "queued" },
  running: { icon: "▶", tone: "active", label: "running" },
  paused: { icon: "❚❚", tone: "warn", label: "paused" },
  succeeded: { icon: "✓", tone: "ok", label: "succeeded" },
  failed: { icon: "✕", tone: "bad", label: "failed" },
  cancelled: { icon: "⊘", tone: "muted", label: "cancelled" },
  uploaded: { icon: "…", tone: "info", label: "uploaded" },
  processed: { icon: "✓", tone: "ok", label: "processed" },
  error: { icon: "✕", tone: "bad", label: "error" },
};

export function badge(status) {
  const st = STATUS[status] || { icon: "•", tone: "muted", label: status };
  return h("span", { class: `badge tone-${st.tone}`, "data-status": status },
    h("span", { class: "badge-icon", "aria-hidden": "true" }, st.icon), " ", st.label);
}

export const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

/** A table cell whose content sits in one box (so the stacked mobile layout keeps label | value). */
export function td(attrs, ...children) {
  return h("td", attrs, h("div", { class: "cell" }, ...children));
}

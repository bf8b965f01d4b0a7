// Plain SVG line charts: one <circle data-step> per logged point, optional ±band, legend, ticks.
import { h, s, fmtNum } from "./dom.js";

const W = 600, H = 240, M = { top: 14, right: 16, bottom: 34, left: 56 };
export const PALETTE = [
  { color: "#2563eb", dash: "" },
  { color: "#d97706", dash: "6 3" },
  { color: "#059669", dash: "2 3" },
  { color: "#9333ea", dash: "10 3 2 3" },
  { color: "#dc2626", dash: "4 4" },
  { color: "#0891b2", dash: "1 2" },
];

function niceTicks(lo, hi, count = 5) {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((v) => span / v <= count) || raw;
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

/**
 * lineChart({name, title, series: [{key, label, points: [{step, value}], band?: [{step, lo, hi}]}],
 *            xLabel, emptyText, xTickLabel?})
 */
export function lineChart({ name, title, series, xLabel = "step", emptyText = "No data yet", xTickLabel }) {
  const all = series.flatMap((sr) => sr.points.filter((p) => Number.isFinite(p.value)));
  const figure = h("figure", { class: "chart", "data-chart": name });
  const captionId = `chart-${name}-title`;
  figure.appendChild(h("figcaption", { id: captionId, class: "chart-title" }, title));
  if (!all.length) {
    figure.appendChild(h("p", { class: "chart-empty" }, emptyText));
    return figure;
  }
  const bands = series.flatMap((sr) => (sr.band || []).filter((b) => Number.isFinite(b.lo) && Number.isFinite(b.hi)));
  const steps = all.map((p) => p.step);
  let x0 = Math.min(...steps), x1 = Math.max(...steps);
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  const ys = all.map((p) => p.value).concat(bands.flatMap((b) => [b.lo, b.hi]));
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (y0 === y1) { const pad = Math.abs(y0) * 0.1 || 0.5; y0 -= pad; y1 += pad; }
  else { const pad = (y1 - y0) * 0.06; y0 -= pad; y1 += pad; }
  const iw = W - M.left - M.right, ih = H - M.top - M.bottom;
  const X = (v) => M.left + ((v - x0) / (x1 - x0)) * iw;
  const Y = (v) => M.top + (1 - (v - y0) / (y1 - y0)) * ih;

  const last = series.map((sr) => {
    const p = sr.points.filter((q) => Number.isFinite(q.value)).at(-1);
    return p ? `${sr.label} ${fmtNum(p.value)} at step ${p.step}` : null;
  }).filter(Boolean).join("; ");
  const svg = s("svg", {
    viewBox: `0 0 ${W} ${H}`, class: "chart-svg", role: "img", "aria-labelledby": captionId,
    "aria-describedby": `chart-${name}-desc`, preserveAspectRatio: "xMidYMid meet",
  });
  svg.appendChild(s("desc", { id: `chart-${name}-desc` }, `${all.length} points. Latest: ${last}.`));

  // grid + axes
  const grid = s("g", { class: "chart-grid", "aria-hidden": "true" });
  for (const t of niceTicks(y0, y1)) {
    grid.appendChild(s("line", { x1: M.left, x2: W - M.right, y1: Y(t), y2: Y(t) }));
    grid.appendChild(s("text", { x: M.left - 6, y: Y(t) + 4, "text-anchor": "end", class: "tick" }, fmtNum(t)));
  }
  const xticks = niceTicks(x0, x1, 6).filter((t) => Number.isInteger(t));
  for (const t of xticks) {
    grid.appendChild(s("line", { x1: X(t), x2: X(t), y1: H - M.bottom, y2: H - M.bottom + 4, class: "xtick" }));
    grid.appendChild(s("text", { x: X(t), y: H - M.bottom + 16, "text-anchor": "middle", class: "tick" },
      xTickLabel ? xTickLabel(t) : String(t)));
  }
  grid.appendChild(s("line", { x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom, class: "axis" }));
  grid.appendChild(s("line", { x1: M.left, x2: M.left, y1: M.top, y2: H - M.bottom, class: "axis" }));
  grid.appendChild(s("text", { x: M.left + iw / 2, y: H - 4, "text-anchor": "middle", class: "axis-label" }, xLabel));
  svg.appendChild(grid);

  series.forEach((sr, i) => {
    const style = PALETTE[i % PALETTE.length];
    const g = s("g", { class: "series", "data-series": sr.key });
    const band = (sr.band || []).filter((b) => Number.isFinite(b.lo) && Number.isFinite(b.hi));
    if (band.length) {
      const pts = band.map((b) => `${X(b.step)},${Y(b.hi)}`).concat(band.slice().reverse().map((b) => `${X(b.step)},${Y(b.lo)}`));
      g.appendChild(s("polygon", { points: pts.join(" "), fill: style.color, "fill-opacity": "0.15", stroke: "none", class: "band", "data-band": sr.key }));
    }
    const pts = sr.points.filter((p) => Number.isFinite(p.value));
    if (pts.length > 1) {
      g.appendChild(s("polyline", {
        points: pts.map((p) => `${X(p.step)},${Y(p.value)}`).join(" "), fill: "none", stroke: style.color,
        "stroke-width": 2, "stroke-dasharray": style.dash || null, "stroke-linejoin": "round",
      }));
    }
    for (const p of pts) {
      const c = s("circle", { cx: X(p.step), cy: Y(p.value), r: pts.length > 80 ? 1.8 : 3.2, fill: style.color,
        class: "point", "data-step": p.step, "data-series": sr.key, "data-value": p.value });
      c.appendChild(s("title", {}, `${sr.label} — step ${p.step}: ${fmtNum(p.value, 4)}${p.extra ? ` (${p.extra})` : ""}`));
      g.appendChild(c);
    }
    svg.appendChild(g);
  });
  figure.appendChild(svg);

  const legend = h("ul", { class: "legend", "aria-label": `${title} legend` });
  series.forEach((sr, i) => {
    const style = PALETTE[i % PALETTE.length];
    const sw = s("svg", { width: 28, height: 10, "aria-hidden": "true", class: "swatch" },
      s("line", { x1: 1, y1: 5, x2: 27, y2: 5, stroke: style.color, "stroke-width": 2.5, "stroke-dasharray": style.dash || null }));
    legend.appendChild(h("li", {}, sw, " ", sr.label, sr.band && sr.band.length ? " (band: ± std)" : ""));
  });
  figure.appendChild(legend);
  return figure;
}

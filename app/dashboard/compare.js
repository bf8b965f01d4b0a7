// Compare page (#/compare?ids=a,b,c&metric=…): several jobs' validation metrics on one chart over steps
// (one line per job, a picker for the metric) and the table `vrft jobs compare` prints (first → final
// evaluation). The rows are shaped as client/vrft/compare.py shapes them.
import { ApiError, request } from "./api.js";
import { lineChart } from "./charts.js";
import { badge, h, replace, td, TERMINAL } from "./dom.js";
import { fetchNewMetrics } from "./job.js";

// columns in this order, then anything else alphabetically; valid_metric repeats the task metric's own name
const PREFERRED = ["valid_reward_mean", "valid_accuracy", "valid_map", "valid_miou", "valid_loss", "valid_mean_token_accuracy"];
const ALIASES = new Set(["valid_metric"]);

export function compareHref(ids, metric) {
  const q = `ids=${ids.map(encodeURIComponent).join(",")}`;
  return `#/compare?${q}${metric ? `&metric=${encodeURIComponent(metric)}` : ""}`;
}

/** 4 significant digits, like the CLI's `.4g`. */
export function fmtSig(v) {
  if (v === null || v === undefined) return "—";
  if (!Number.isFinite(v)) return String(v);
  if (v !== 0 && (Math.abs(v) < 1e-4 || Math.abs(v) >= 1e4)) return v.toExponential(3).replace(/\.?0+e/, "e");
  return String(Number(v.toPrecision(4)));
}

function evaluationMetrics(data) {
  const out = {};
  for (const [k, v] of Object.entries(data)) {
    if (k.startsWith("valid_") && !ALIASES.has(k) && (v === null || typeof v === "number")) out[k] = v;
  }
  return out;
}

/** Evaluations by step from metrics event data oldest first (a step evaluated twice: the later one). */
function evaluations(metrics) {
  const byStep = new Map();
  for (const d of metrics) {
    if (d && d.eval && Number.isInteger(d.step)) byStep.set(d.step, { step: d.step, metrics: evaluationMetrics(d) });
  }
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

function metricNames(entries) {
  const names = new Set(entries.flatMap((e) => e.evals.flatMap((ev) => Object.keys(ev.metrics))));
  return [...PREFERRED.filter((n) => names.has(n)), ...[...names].filter((n) => !PREFERRED.includes(n)).sort()];
}

const methodOf = (job) => (job.method || {}).type || "—";
const jobLabel = (job) => `${job.id}${job.user_provided_suffix ? ` (${job.user_provided_suffix})` : ""} · ${methodOf(job)}`;

function firstToFinal(evals, name) {
  if (!evals.length) return "—";
  const first = evals[0], final = evals.at(-1);
  if (first === final) return fmtSig(final.metrics[name]);
  if (!(name in first.metrics) && !(name in final.metrics)) return "—";
  return `${fmtSig(first.metrics[name])} → ${fmtSig(final.metrics[name])}`;
}

/** A metric name that may wrap after its underscores (valid_mean_token_accuracy is wider than its values). */
const breakable = (name) => name.split("_").flatMap((part, i) => (i ? ["_", h("wbr"), part] : [part]));

function compareTable(entries, names) {
  const headers = ["Job", "Method", "Model", "Status", "Steps", "Evals", ...names];
  const rows = entries.map(({ job, evals }) => {
    const p = job.progress || {};
    return h("tr", { "data-job-id": job.id },
      td({ "data-label": "Job", class: "mono" }, h("a", { href: `#/jobs/${encodeURIComponent(job.id)}` }, job.id),
        job.user_provided_suffix ? h("div", { class: "sub" }, job.user_provided_suffix) : null),
      td({ "data-label": "Method", "data-field": "method" }, methodOf(job)),
      td({ "data-label": "Model", class: "model" }, job.model),
      td({ "data-label": "Status" }, badge(job.status)),
      td({ "data-label": "Steps", class: "num" }, p.total_steps ? `${p.step || 0}/${p.total_steps}` : "—"),
      td({ "data-label": "Evals", class: "num", "data-field": "evals" },
        evals.length ? (evals.length > 1 ? `${evals[0].step} → ${evals.at(-1).step}` : String(evals[0].step)) : "—"),
      ...names.map((n) => td({ "data-label": n, class: "num", "data-metric": n }, firstToFinal(evals, n))));
  });
  return h("table", { class: "responsive compare-table" },
    h("caption", { class: "visually-hidden" }, "Validation metrics of each job: first evaluation → final"),
    h("thead", {}, h("tr", {}, headers.map((t, i) => h("th", { scope: "col", class: i >= 6 ? "metric-col" : null },
      i >= 6 ? breakable(t) : t)))),
    h("tbody", {}, rows));
}

function compareChart(entries, metric) {
  return lineChart({
    name: "compare", title: `${metric} per evaluation (step 0 = the model before training)`,
    emptyText: "None of these jobs has reported this metric yet.",
    series: entries.map(({ job, evals }) => ({
      key: job.id, label: jobLabel(job),
      points: evals.filter((ev) => metric in ev.metrics).map((ev) => ({ step: ev.step, value: ev.metrics[metric] ?? NaN })),
    })),
  });
}

export function mountCompare(root, query, ctx) {
  document.title = "Compare jobs · vrft";
  const ids = [...new Set((query.get("ids") || "").split(",").map((s) => s.trim()).filter(Boolean))];
  const controller = new AbortController();
  ctx.onCleanup(() => controller.abort());
  const signal = controller.signal;

  const missingPanel = h("div", { class: "card error-panel", id: "compare-missing", role: "alert", hidden: true });
  const picker = h("select", { id: "compare-metric" });
  const chartBox = h("div", { class: "compare-chart" });
  const tableBox = h("div", { class: "table-card" });
  replace(root, h("section", { class: "page compare-page", "aria-labelledby": "compare-title" },
    h("p", { class: "crumbs" }, h("a", { href: "#/jobs" }, "← All jobs")),
    h("div", { class: "page-head" }, h("h1", { id: "compare-title" }, "Compare jobs"),
      h("span", { class: "sub" }, `${ids.length} job${ids.length === 1 ? "" : "s"}`)),
    missingPanel,
    h("section", { class: "card", id: "compare-charts", "aria-labelledby": "compare-charts-title" },
      h("h2", { id: "compare-charts-title" }, "Validation metric over steps"),
      h("p", { class: "metric-picker" }, h("label", { for: "compare-metric" }, "Metric "), picker),
      chartBox),
    h("section", { class: "card", id: "compare-table", "aria-labelledby": "compare-table-title" },
      h("h2", { id: "compare-table-title" }, "First → final evaluation"),
      h("p", { class: "sub" }, "Each job's validation metrics at its first evaluation (step 0: the model before training) and its last; the same table as ",
        h("code", {}, "vrft jobs compare"), "."),
      tableBox)));
  if (!ids.length) {
    replace(chartBox, h("p", { class: "empty" }, "No jobs to compare: tick two or more jobs on the ", h("a", { href: "#/jobs" }, "jobs page"), " and press Compare."));
    picker.disabled = true;
    return;
  }

  // settled: a job that had ended when its events were read (they are all in; it is not polled again)
  const state = { jobs: new Map(), known: new Map(ids.map((id) => [id, new Set()])), metrics: new Map(ids.map((id) => [id, []])),
    settled: new Set(), missing: [], sig: "" };
  let metric = query.get("metric") || null;

  function render() {
    const entries = ids.filter((id) => state.jobs.has(id)).map((id) => ({ job: state.jobs.get(id), evals: evaluations(state.metrics.get(id)) }));
    const names = metricNames(entries);
    if (!names.includes(metric)) metric = names[0] || null;
    replace(picker, names.map((n) => h("option", { value: n, selected: n === metric }, n)));
    picker.disabled = !names.length;
    replace(chartBox, metric ? compareChart(entries, metric)
      : h("p", { class: "empty" }, "No evaluations yet: a job evaluates when it has a validation file (step 0, every eval_interval steps, and at the end)."));
    replace(tableBox, compareTable(entries, names));
    missingPanel.hidden = !state.missing.length;
    replace(missingPanel, h("h2", {}, "Unknown job" + (state.missing.length > 1 ? "s" : "")),
      h("p", {}, "Not in this project: ", state.missing.map((m, i) => [i ? ", " : "", h("code", {}, m.id)]),
        state.missing.length ? ` (${state.missing[0].status} ${state.missing[0].code}).` : ""));
  }

  picker.addEventListener("change", () => {
    metric = picker.value;
    history.replaceState(null, "", compareHref(ids, metric));  // shareable; replaceState fires no hashchange
    render();
  });

  ctx.startPoller(async () => {
    const missing = [];
    await Promise.all(ids.map(async (id) => {
      if (state.settled.has(id)) return;
      try {
        const { data } = await request(`/v1/fine_tuning/jobs/${encodeURIComponent(id)}`, { signal });
        const fresh = await fetchNewMetrics(id, state.known.get(id), signal);
        fresh.reverse().forEach((ev) => { state.known.get(id).add(ev.id); state.metrics.get(id).push(ev.data); });
        state.jobs.set(id, data);
        if (TERMINAL.has(data.status)) state.settled.add(id);
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) missing.push({ id, status: err.status, code: err.code });
        else throw err;
      }
    }));
    state.missing = ids.map((id) => missing.find((m) => m.id === id)).filter(Boolean);  // in the order given
    const sig = JSON.stringify([[...state.jobs.values()], [...state.known.values()].map((k) => k.size), state.missing]);
    if (sig !== state.sig) { state.sig = sig; render(); }
    return ids.every((id) => state.settled.has(id) || missing.some((m) => m.id === id)) ? "stop" : null;
  });
}

// Jobs list: status badge, model, created, progress with ETA, latest reward; polls for changes. Ticking two
// or more jobs and pressing Compare opens the compare page.
import { request } from "./api.js";
import { compareHref } from "./compare.js";
import { badge, fmtAgo, fmtDuration, fmtNum, fmtTime, h, replace, td, TERMINAL } from "./dom.js";

export function progressBar(job) {
  const p = job.progress || {};
  const step = p.step || 0;
  const total = p.total_steps || 0;
  const pct = total ? Math.min(100, (100 * step) / total) : (job.status === "succeeded" ? 100 : 0);
  const label = total ? `${step} / ${total} steps` : (step ? `${step} steps` : "not started");
  return h("div", { class: "progress-wrap" },
    h("div", {
      class: "progress", role: "progressbar", "aria-label": `Progress of ${job.id}`, "aria-valuemin": 0,
      "aria-valuemax": total || 100, "aria-valuenow": total ? step : Math.round(pct), "aria-valuetext": label,
    }, h("div", { class: `progress-fill status-${job.status}`, style: `width:${pct.toFixed(1)}%` })),
    h("span", { class: "progress-text" }, label));
}

export function etaText(job) {
  if (TERMINAL.has(job.status)) return job.finished_at ? `finished ${fmtAgo(job.finished_at)}` : "";
  if (job.status === "queued" && job.queue_position) return `queue position ${job.queue_position}`;
  if (job.status === "paused") return "paused";
  if (job.estimated_finish) return `ETA ${fmtDuration(job.estimated_finish - Date.now() / 1000)}`;
  return job.status === "running" ? "ETA estimating…" : "";
}

function jobRow(job, selected, onPick) {
  const link = h("a", { href: `#/jobs/${encodeURIComponent(job.id)}`, class: "mono" }, job.id);
  return h("tr", { "data-job-id": job.id, "data-status": job.status },
    td({ "data-label": "Compare", class: "pick" }, h("input", {
      type: "checkbox", "aria-label": `Select ${job.id} to compare`, checked: selected.has(job.id),
      onchange: (ev) => onPick(job.id, ev.target.checked),
    })),
    td({ "data-label": "Job" }, link, job.user_provided_suffix ? h("div", { class: "sub" }, job.user_provided_suffix) : null),
    td({ "data-label": "Status" }, badge(job.status)),
    td({ "data-label": "Model", class: "model" }, job.model, job.fine_tuned_model ? h("div", { class: "sub mono", title: job.fine_tuned_model }, "→ ", job.fine_tuned_model) : null),
    td({ "data-label": "Created" }, h("time", { datetime: new Date(job.created_at * 1000).toISOString(), title: fmtTime(job.created_at) }, fmtAgo(job.created_at))),
    td({ "data-label": "Progress", class: "progress-cell" }, progressBar(job), h("div", { class: "eta sub" }, etaText(job))),
    td({ "data-label": "Latest reward", class: "num", "data-field": "latest_reward" }, fmtNum(job.latest_reward)));
}

export function mountJobs(root, ctx) {
  document.title = "Jobs · vrft";
  const tbody = h("tbody");
  const empty = h("p", { class: "empty", hidden: true },
    "No fine-tuning jobs in this project yet. Create one with the API or SDK (POST /v1/fine_tuning/jobs); it will appear here.");
  const updated = h("p", { class: "sub updated", "aria-live": "off" });
  const selected = new Set();  // kept across refreshes, which redraw the rows
  const compare = h("button", { type: "button", class: "primary", id: "compare-selected", disabled: true,
    onclick: () => { location.hash = compareHref([...selected]); } }, "Compare selected");
  const showSelection = () => {
    compare.disabled = selected.size < 2;
    compare.textContent = selected.size ? `Compare selected (${selected.size})` : "Compare selected";
    compare.title = selected.size < 2 ? "Tick two or more jobs to compare their validation metrics" : "";
  };
  const onPick = (id, on) => {
    if (on) selected.add(id); else selected.delete(id);
    showSelection();
  };
  showSelection();
  const table = h("table", { class: "jobs-table responsive" },
    h("caption", { class: "visually-hidden" }, "Fine-tuning jobs, newest first"),
    h("thead", {}, h("tr", {}, h("th", { scope: "col", class: "pick" }, h("span", { class: "visually-hidden" }, "Compare")),
      ...["Job", "Status", "Model", "Created", "Progress", "Latest reward"].map((t) => h("th", { scope: "col" }, t)))),
    tbody);
  replace(root, h("section", { class: "page", "aria-labelledby": "jobs-title" },
    h("div", { class: "page-head" }, h("h1", { id: "jobs-title" }, "Fine-tuning jobs"), updated, compare),
    h("div", { class: "card table-card" }, table, empty)));

  let lastSig = "";
  ctx.startPoller(async () => {
    const { data, pollAfterMs } = await request("/v1/fine_tuning/jobs?limit=100");
    const jobs = data.data;
    const sig = JSON.stringify(jobs) + Math.floor(Date.now() / 10000);
    if (sig !== lastSig) {
      lastSig = sig;
      replace(tbody, jobs.map((job) => jobRow(job, selected, onPick)));
      empty.hidden = jobs.length > 0;
      table.hidden = jobs.length === 0;
    }
    updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    const active = jobs.some((j) => !TERMINAL.has(j.status));
    return pollAfterMs ?? (active ? null : 5000);
  });
}

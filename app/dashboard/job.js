// Job page: status + actions, hyperparameters, grader, live charts, rollouts, checkpoints, events, error.
import { ApiError, download, request } from "./api.js";
import { lineChart } from "./charts.js";
import { badge, fmtAgo, fmtNum, fmtTime, h, replace, td, TERMINAL } from "./dom.js";
import { etaText, progressBar } from "./jobs.js";
import { renderRollouts } from "./rollouts.js";

const ACTIONS = {
  cancel: {
    label: "Cancel job", legal: (j) => !TERMINAL.has(j.status),
    title: "Cancel this job?", body: (j) => `Job ${j.id} will stop at its next step. Checkpoints written so far are kept. This cannot be undone.`,
    confirm: "Yes, cancel job", danger: true,
  },
  pause: {
    label: "Pause", legal: (j) => !j.dry_run && ["queued", "running"].includes(j.status),
    title: "Pause this job?", body: (j) => `Job ${j.id} will write a checkpoint and pause; you can resume it later from that checkpoint.`,
    confirm: "Pause job", danger: false,
  },
  resume: {
    label: "Resume", legal: (j) => j.status === "paused",
    title: "Resume this job?", body: (j) => `Job ${j.id} will be queued again and continue from step ${(j.progress || {}).step || 0}.`,
    confirm: "Resume job", danger: false,
  },
};

/** The job's method.reinforcement or method.supervised block (grader, hyperparameters). */
const methodBlock = (job) => ((job.method || {})[(job.method || {}).type] || {});

function section(id, title, ...children) {
  return h("section", { class: "card", id, "aria-labelledby": `${id}-title` }, h("h2", { id: `${id}-title` }, title), ...children);
}

/** Devices the job asked for (resources.gpus) and, once it has logged a step, the ranks it trains on. */
function devicesText(job, metrics) {
  const last = metrics.filter((m) => m.world_size).at(-1);
  return String((job.resources || {}).gpus || 1) + (last ? ` (world size ${last.world_size})` : "");
}

function kvList(obj) {
  const entries = Object.entries(obj || {});
  if (!entries.length) return h("p", { class: "sub" }, "—");
  return h("dl", { class: "kv" }, entries.flatMap(([k, v]) => [
    h("dt", {}, k),
    h("dd", { class: "mono" }, v !== null && typeof v === "object" ? JSON.stringify(v) : (typeof v === "number" && !Number.isInteger(v) ? fmtNum(v, 6) : String(v))),
  ]));
}

/** Fetch the metrics events we have not seen yet (newest first, paging back to the known ones). */
export async function fetchNewMetrics(jobId, known, signal) {
  const fresh = [];
  let after = null;
  for (let page = 0; page < 50; page++) {
    const q = new URLSearchParams({ type: "metrics", limit: "500" });
    if (after) q.set("after", after);
    const { data } = await request(`/v1/fine_tuning/jobs/${encodeURIComponent(jobId)}/events?${q}`, { signal });
    let hitKnown = false;
    for (const ev of data.data) {
      if (known.has(ev.id)) { hitKnown = true; break; }
      fresh.push(ev);
    }
    if (hitKnown || !data.has_more || !data.data.length) break;
    after = data.data.at(-1).id;
  }
  return fresh;
}

function buildCharts(metrics, method) {
  // one point per logged step (the latest event wins if a step was logged twice, e.g. after a resume)
  const train = new Map(), evals = new Map();
  for (const d of metrics) {
    if (!d || d.step === undefined || d.step === null) continue;
    (d.eval ? evals : train).set(Number(d.step), d);
  }
  const rows = [...train.values()].sort((a, b) => a.step - b.step);
  const ev = [...evals.values()].sort((a, b) => a.step - b.step);
  const pts = (key, src = rows) => src.map((d) => ({ step: d.step, value: typeof d[key] === "number" ? d[key] : NaN }));
  const graders = [...new Set(rows.flatMap((d) => Object.keys(d.rewards || {})))];
  const validGraders = [...new Set(ev.flatMap((d) => Object.keys(d.valid_rewards || {})))];
  const metricName = (ev.find((d) => d.valid_metric_name) || {}).valid_metric_name || "task metric";
  const baseLabel = (t) => (t === 0 && ev.length ? "base" : String(t));
  const none = rows.length
    ? `Not logged for the ${rows.length} step${rows.length === 1 ? "" : "s"} so far (null: e.g. every group had zero reward variance, so no update was made).`
    : "No training steps logged yet.";
  const noEvals = "No evaluations yet (they need a validation file or eval_interval).";

  // a supervised job logs loss and token accuracy, not rewards: its own charts, no empty reward/KL ones
  if (method === "supervised" || rows.some((d) => typeof d.train_loss === "number")) {
    const graded = ev.some((d) => typeof d.valid_reward_mean === "number");
    return [
      lineChart({ name: "train_loss", title: "Training loss (assistant tokens)", emptyText: "No training steps logged yet.",
        series: [{ key: "train_loss", label: "train loss", points: pts("train_loss") }] }),
      lineChart({ name: "token_accuracy", title: "Token accuracy (share of assistant tokens predicted right)",
        emptyText: "No training steps logged yet.",
        series: [{ key: "train_mean_token_accuracy", label: "train token accuracy", points: pts("train_mean_token_accuracy") }] }),
      lineChart({ name: "valid_loss", title: "Validation loss per evaluation (step 0 = base model)", emptyText: noEvals,
        xTickLabel: baseLabel, series: [{ key: "valid_loss", label: "validation loss", points: pts("valid_loss", ev) }] }),
      lineChart({
        name: "validation", xTickLabel: baseLabel, emptyText: noEvals,
        title: `Validation token accuracy${graded ? `, reward and ${metricName}` : ""} per evaluation (step 0 = base model)`,
        series: [
          { key: "valid_mean_token_accuracy", label: "validation token accuracy", points: pts("valid_mean_token_accuracy", ev) },
          ...(graded ? [{ key: "valid_reward_mean", label: "validation reward", points: pts("valid_reward_mean", ev) },
            { key: "valid_metric", label: metricName, points: pts("valid_metric", ev) }] : []),
        ],
      }),
    ];
  }

  return [
    lineChart({
      name: "reward", title: "Reward (mean ± std) and per-grader means",
      emptyText: "No training steps logged yet.",
      series: [
        { key: "reward_mean", label: "reward mean", points: pts("reward_mean"),
          band: rows.map((d) => ({ step: d.step, lo: d.reward_mean - (d.reward_std || 0), hi: d.reward_mean + (d.reward_std || 0) })) },
        ...graders.map((g) => ({ key: `reward:${g}`, label: g, points: rows.map((d) => ({ step: d.step, value: (d.rewards || {})[g] ?? NaN })) })),
      ],
    }),
    lineChart({ name: "kl", title: "KL divergence to the reference", series: [{ key: "kl", label: "KL", points: pts("kl") }], emptyText: none }),
    lineChart({ name: "loss", title: "Loss", series: [{ key: "loss", label: "loss", points: pts("loss") }], emptyText: none }),
    lineChart({ name: "completion_length", title: "Completion length (tokens, mean)", series: [{ key: "completion_length_mean", label: "mean length", points: pts("completion_length_mean") }], emptyText: none }),
    lineChart({ name: "zero_variance", title: "Groups with zero reward variance (fraction)", series: [{ key: "zero_variance_fraction", label: "zero-variance fraction", points: pts("zero_variance_fraction") }], emptyText: none }),
    lineChart({
      name: "validation", title: `Validation reward and ${metricName} per evaluation (step 0 = base model)`,
      emptyText: noEvals, xTickLabel: baseLabel,
      series: [
        { key: "valid_reward_mean", label: "validation reward", points: pts("valid_reward_mean", ev) },
        { key: "valid_metric", label: metricName, points: pts("valid_metric", ev) },
        ...validGraders.map((g) => ({ key: `valid:${g}`, label: `valid ${g}`, points: ev.map((d) => ({ step: d.step, value: (d.valid_rewards || {})[g] ?? NaN })) })),
      ],
    }),
  ];
}

export function mountJob(root, jobId, ctx) {
  document.title = `${jobId} · vrft`;
  const base = `/v1/fine_tuning/jobs/${encodeURIComponent(jobId)}`;
  const controller = new AbortController();
  ctx.onCleanup(() => controller.abort());
  const signal = controller.signal;

  const head = h("div", { class: "job-head" });
  const actions = h("div", { class: "actions", role: "group", "aria-label": "Job actions" });
  const errorPanel = h("section", { class: "card error-panel", id: "job-error", role: "alert", hidden: true });
  const summary = h("div", { class: "summary" });
  const charts = h("div", { class: "charts" });
  const hp = h("div");
  const grader = h("div");
  const rolloutsBox = h("div", { class: "rollouts" });
  const rolloutsSection = section("job-rollouts", "Rollout browser", rolloutsBox);
  const ckptBox = h("div");
  const eventsLog = h("ol", { class: "events-log", role: "log", "aria-label": "Job events, oldest to newest", tabindex: "0" });

  replace(root, h("section", { class: "page job-page", "aria-labelledby": "job-title" },
    h("p", { class: "crumbs" }, h("a", { href: "#/jobs" }, "← All jobs")),
    head, actions, errorPanel,
    section("job-summary", "Status", summary),
    section("job-charts", "Training curves", charts),
    rolloutsSection,
    h("div", { class: "two-col" },
      section("job-hyperparameters", "Hyperparameters", hp),
      section("job-grader", "Grader", grader)),
    section("job-checkpoints", "Checkpoints and adapters", ckptBox),
    section("job-events", "Events", eventsLog)));

  const state = { job: null, metricIds: new Set(), metrics: [], sigs: {}, rolloutStep: null, rolloutSel: { step: null }, busy: false };
  let poller;

  const changed = (name, value) => {
    const sig = typeof value === "string" ? value : JSON.stringify(value);
    if (state.sigs[name] === sig) return false;
    state.sigs[name] = sig;
    return true;
  };

  async function act(name) {
    const a = ACTIONS[name];
    const job = state.job;
    if (!job || !a.legal(job)) return;
    const ok = await ctx.confirmDialog({ title: a.title, body: a.body(job), confirmLabel: a.confirm, danger: a.danger });
    if (!ok) return;
    state.busy = true;
    renderActions();
    try {
      const { data } = await request(`${base}/${name}`, { method: "POST" });
      ctx.toast(`Job ${data.id} is now ${data.status.replace("_", " ")}${data.status === "running" && name === "pause" ? " (pause requested)" : ""}.`);
      state.job = data;
      renderHead();
    } catch (err) {
      ctx.toast(`Could not ${name} the job: ${err instanceof ApiError ? err.describe() : err}`, "error");
    } finally {
      state.busy = false;
      poller.now();
    }
  }

  function renderActions() {
    const job = state.job;
    replace(actions, Object.entries(ACTIONS).map(([name, a]) => {
      const legal = job && a.legal(job);
      return h("button", {
        type: "button", class: name === "cancel" ? "danger" : "", "data-action": name, disabled: !legal || state.busy,
        title: legal ? a.title : `Not possible while the job is ${job ? job.status : "loading"}`,
        onclick: () => act(name),
      }, a.label);
    }));
  }

  function renderHead() {
    const job = state.job;
    replace(head,
      h("h1", { id: "job-title", class: "mono" }, job.id),
      h("div", { class: "head-status", "data-job-status": job.status }, badge(job.status), h("span", { class: "sub" }, job.model)));
    renderActions();
    if (job.error && job.error.code) {
      errorPanel.hidden = false;
      replace(errorPanel, h("h2", {}, "Job failed"),
        h("p", {}, h("strong", {}, "Error code: "), h("code", { "data-field": "error-code" }, job.error.code)),
        h("p", { "data-field": "error-message" }, job.error.message || ""),
        job.error.param ? h("p", { class: "sub" }, "Parameter: ", h("code", {}, job.error.param)) : null);
      errorPanel.querySelector("h2").textContent = job.status === "failed" ? "Job failed" : "Job error";
    } else {
      errorPanel.hidden = true;
    }
    const hpRes = job.resolved_hyperparameters || methodBlock(job).hyperparameters || job.hyperparameters;
    replace(summary, h("dl", { class: "kv summary-kv" },
      h("dt", {}, "Progress"), h("dd", {}, progressBar(job), h("span", { class: "sub eta" }, " ", etaText(job))),
      h("dt", {}, "Latest reward"), h("dd", { "data-field": "latest_reward" }, fmtNum(job.latest_reward)),
      h("dt", {}, "Created"), h("dd", {}, fmtTime(job.created_at), " ", h("span", { class: "sub" }, `(${fmtAgo(job.created_at)})`)),
      h("dt", {}, "Finished"), h("dd", {}, fmtTime(job.finished_at)),
      job.queue_position ? [h("dt", {}, "Queue position"), h("dd", {}, String(job.queue_position))] : null,
      h("dt", {}, "Base model"), h("dd", { class: "mono" }, job.model),
      h("dt", {}, "Fine-tuned model"), h("dd", { class: "mono" }, job.fine_tuned_model || "—"),
      h("dt", {}, "Training file"), h("dd", { class: "mono" }, job.training_file || "—"),
      h("dt", {}, "Validation file"), h("dd", { class: "mono" }, job.validation_file || "—"),
      h("dt", {}, "Devices"), h("dd", { "data-field": "devices" }, devicesText(job, state.metrics)),
      job.attempt > 1 ? [h("dt", {}, "Attempt"), h("dd", {}, String(job.attempt))] : null,
      job.dry_run ? [h("dt", {}, "Dry run"), h("dd", {}, "yes")] : null));
    if (changed("hp", hpRes)) replace(hp, kvList(hpRes));
    const g = methodBlock(job).grader ?? null;  // null, not undefined: "no grader" renders as "—" too
    rolloutsSection.hidden = (job.method || {}).type === "supervised";  // SFT learns targets: it samples no rollouts
    if (changed("grader", g)) {
      replace(grader, g ? [h("p", {}, h("strong", {}, g.name || g.type), " ", h("span", { class: "sub" }, `(${g.type}${g.task ? `, ${g.task}` : ""})`)),
        h("pre", { class: "json", tabindex: "0", "aria-label": "Grader JSON" }, JSON.stringify(g, null, 2))] : h("p", { class: "sub" }, "—"));
    }
  }

  function renderCheckpoints(ckpts) {
    const job = state.job;
    const rows = ckpts.slice().sort((a, b) => a.step_number - b.step_number).map((c) => h("tr", { "data-checkpoint": c.id },
      td({ "data-label": "Step" }, String(c.step_number)),
      td({ "data-label": "Checkpoint", class: "mono" }, c.id, h("div", { class: "sub" }, c.fine_tuned_model_checkpoint)),
      td({ "data-label": "Created" }, fmtTime(c.created_at)),
      td({ "data-label": "Metrics", class: "mono small" }, Object.entries(c.metrics || {}).filter(([, v]) => typeof v !== "object").map(([k, v]) => `${k}=${fmtNum(v)}`).join("  ") || "—"),
      td({ "data-label": "Adapter" }, downloadButton(`${base}/checkpoints/${encodeURIComponent(c.id)}/adapter`, `${job.id}-step-${c.step_number}-adapter.tar`, `Download adapter for step ${c.step_number}`))));
    replace(ckptBox,
      job.status === "succeeded" && job.fine_tuned_model
        ? h("p", { class: "final-adapter" }, h("strong", {}, "Final adapter: "), downloadButton(`${base}/adapter`, `${job.id}-adapter.tar`, "Download final adapter"))
        : null,
      rows.length
        ? h("table", { class: "responsive" }, h("caption", { class: "visually-hidden" }, "Checkpoints"),
          h("thead", {}, h("tr", {}, ...["Step", "Checkpoint", "Created", "Metrics", "Adapter"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, rows))
        : h("p", { class: "sub" }, "No checkpoints yet."));
  }

  function downloadButton(url, filename, label) {
    const btn = h("button", { type: "button", class: "download", "aria-label": label, "data-download": url }, "⬇ Download .tar");
    btn.addEventListener("click", async () => {
      btn.disabled = true;
      const old = btn.textContent;
      btn.textContent = "Downloading…";
      try {
        const size = await download(url, filename);
        ctx.toast(`Downloaded ${filename} (${Math.round(size / 1024)} KB).`);
      } catch (err) {
        ctx.toast(`Download failed: ${err instanceof ApiError ? err.describe() : err}`, "error");
      } finally {
        btn.disabled = false;
        btn.textContent = old;
      }
    });
    return btn;
  }

  function renderEvents(events) {
    const atBottom = eventsLog.scrollHeight - eventsLog.scrollTop - eventsLog.clientHeight < 24;
    replace(eventsLog, events.slice().reverse().map((e) => h("li", { class: `ev level-${e.level}`, "data-event-type": e.type },
      h("time", { datetime: new Date(e.created_at * 1000).toISOString() }, new Date(e.created_at * 1000).toLocaleTimeString()),
      h("span", { class: `level level-${e.level}` }, e.level),
      h("span", { class: "msg" }, e.message))));
    if (!events.length) eventsLog.appendChild(h("li", { class: "sub" }, "No events yet."));
    if (atBottom || !state.eventsScrolled) { eventsLog.scrollTop = eventsLog.scrollHeight; state.eventsScrolled = true; }
  }

  poller = ctx.startPoller(async () => {
    let job, pollAfterMs;
    try {
      ({ data: job, pollAfterMs } = await request(base, { signal }));
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        replace(root, h("section", { class: "page" }, h("p", { class: "crumbs" }, h("a", { href: "#/jobs" }, "← All jobs")),
          h("div", { class: "card error-panel", role: "alert" }, h("h1", {}, "Job not found"),
            h("p", {}, `No job ${jobId} in this project (${err.status} ${err.code}).`))));
        return "stop";
      }
      throw err;
    }
    state.job = job;
    const step = (job.progress || {}).step || 0;
    const [fresh, events, ckpts, rollouts] = await Promise.all([
      fetchNewMetrics(jobId, state.metricIds, signal),
      request(`${base}/events?limit=100`, { signal }).then((r) => r.data.data),
      request(`${base}/checkpoints?limit=100`, { signal }).then((r) => r.data.data),
      (state.rolloutStep !== step || state.rolloutsTerminal !== TERMINAL.has(job.status))
        ? request(`${base}/rollouts?limit=64`, { signal }).then((r) => r.data.data) : Promise.resolve(null),
    ]);
    if (changed("job", [job, Math.floor(Date.now() / 5000)])) renderHead();
    if (fresh.length || !state.sigs.charts) {
      fresh.reverse().forEach((ev) => { state.metricIds.add(ev.id); state.metrics.push(ev.data); });
      state.sigs.charts = "1";
      replace(charts, buildCharts(state.metrics, (job.method || {}).type));
      const devices = summary.querySelector('[data-field="devices"]');
      if (devices) devices.textContent = devicesText(job, state.metrics);
    }
    if (changed("events", events.map((e) => e.id))) renderEvents(events);
    if (changed("ckpts", [ckpts, job.status])) renderCheckpoints(ckpts);
    if (rollouts) {
      state.rolloutStep = step;
      state.rolloutsTerminal = TERMINAL.has(job.status);
      if (changed("rollouts", rollouts.map((r) => `${r.step}:${r.prompt_id}`))) renderRollouts(rolloutsBox, rollouts, state.rolloutSel);
    }
    if (TERMINAL.has(job.status)) return "stop";
    return pollAfterMs;
  });
  ctx.onCleanup(() => poller.stop());
}

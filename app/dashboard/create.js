// Create-job page: the method (reinforcement or supervised), data files (upload or pick, each showing
// the methods it suits), base model or a fine-tuned one, grader (preset or JSON, validated live by the
// server; optional for a supervised job), hyperparameters with what "auto" resolves to, a dry run
// (reinforcement only) and its report, launch.
import { ApiError, request } from "./api.js";
import { fmtDuration, fmtNum, h, replace, TERMINAL } from "./dom.js";

export const GRADER_PRESETS = {
  classification: { type: "visual_rft", name: "visual_rft", task: "classification" },
  detection: { type: "visual_rft", name: "visual_rft", task: "detection" },
  grounding: { type: "visual_rft", name: "visual_rft", task: "grounding" },
};

export const METHODS = {
  reinforcement: { label: "Reinforcement", help: "GRPO: sample answers, score them with a grader, learn from the better ones." },
  supervised: { label: "Supervised", help: "Learn the assistant's answers of a chat file; a grader may score the validation file." },
};

// The hyperparameters with a form field. Anything else goes in the "more" JSON box. `auto`: the
// server resolves an empty field; otherwise an empty field takes the documented default. `grpo`: a
// reinforcement knob, which a supervised job refuses (hidden and never sent then).
const HP_FIELDS = [
  { name: "n_epochs", kind: "int", auto: true },
  { name: "batch_size", kind: "int", auto: true, help: { reinforcement: "prompts per step", supervised: "examples per step" } },
  { name: "max_steps", kind: "int", auto: true },
  { name: "learning_rate_multiplier", kind: "float", auto: true },
  { name: "learning_rate", kind: "float", auto: true },
  { name: "group_size", kind: "int", def: 8, help: "completions per prompt", grpo: true },
  { name: "max_completion_tokens", kind: "int", def: 256, help: { reinforcement: "completion length", supervised: "graded answer length" } },
  { name: "temperature", kind: "float", def: 1.0, grpo: true },
  { name: "beta", kind: "float", def: 0.04, help: "KL weight", grpo: true },
  { name: "checkpoint_interval", kind: "int", auto: true },
  { name: "eval_interval", kind: "int", auto: true },
  { name: "eval_samples", kind: "int", auto: true },
  { name: "lora.r", kind: "int", def: 16 },
  { name: "lora.alpha", kind: "float", def: 32 },
];

// What "auto" becomes, in words, per method, until the server has answered. The rule and the numbers
// are the server's (app/jobs/hyperparameters.py): POST /v1/fine_tuning/jobs/validate runs every check
// creation makes and answers resolved_hyperparameters without creating a job, so the column shows the
// exact values as the form changes (and the plan line shows the server's refusal, field named).
const AUTO_RULES = {
  n_epochs: { reinforcement: "~200 steps' worth (1–50)", supervised: "3, kept so rows × epochs is 100–25,000" },
  batch_size: "min(16, rows)",
  max_steps: "⌈rows / batch⌉ × epochs",
  learning_rate_multiplier: "1",
  learning_rate: { reinforcement: "5e-5 × multiplier", supervised: "1e-4 × multiplier" },
  checkpoint_interval: "⌈max steps / 4⌉",
  eval_interval: "the checkpoint interval",
  eval_samples: "min(validation rows, 64)",
};
const perMethod = (v, method) => (v && typeof v === "object" ? v[method] : v);

const errText = (err) => (err instanceof ApiError ? err.describe() : String(err && err.message || err));

function fieldId(name) {
  return `hp-${name.replace(/\./g, "-")}`;
}

/** Parse one hyperparameter field: undefined when left to auto/default, else a JSON number. */
function parseField(f, raw) {
  const text = raw.trim();
  if (text === "" || (f.auto && text.toLowerCase() === "auto")) return undefined;
  const v = Number(text);
  if (!Number.isFinite(v)) throw new Error(`${f.name}: "${text}" is not a number`);
  if (f.kind === "int" && !Number.isInteger(v)) throw new Error(`${f.name}: "${text}" is not a whole number`);
  return v;
}

function getPath(obj, path) {
  return path.split(".").reduce((o, k) => (o && typeof o === "object" ? o[k] : undefined), obj);
}

/** An SVG bar chart of a dry run's reward histogram ({edges, counts}). */
function histogram(hist) {
  const counts = (hist && hist.counts) || [];
  const edges = (hist && hist.edges) || [];
  if (!counts.length) return h("p", { class: "sub" }, "No rewards.");
  const W = 360, H = 140, pad = 24;
  const max = Math.max(...counts, 1);
  const bw = (W - pad * 2) / counts.length;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("class", "histogram");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `Reward histogram: ${counts.join(", ")} completions per bin`);
  const mk = (tag, attrs, text) => {
    const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    Object.entries(attrs).forEach(([k, v]) => el.setAttribute(k, String(v)));
    if (text !== undefined) el.textContent = text;
    svg.appendChild(el);
    return el;
  };
  mk("line", { x1: pad, y1: H - pad, x2: W - pad, y2: H - pad, stroke: "#94a3b8" });
  counts.forEach((c, i) => {
    const bh = ((H - pad * 2) * c) / max;
    const lo = edges[i], hi = edges[i + 1] ?? edges[i];
    const bar = mk("rect", { x: pad + i * bw + 1, y: H - pad - bh, width: Math.max(bw - 2, 1), height: bh, fill: "#2563eb", "data-bin": i, "data-count": c });
    const t = document.createElementNS("http://www.w3.org/2000/svg", "title");
    t.textContent = `${fmtNum(lo)}–${fmtNum(hi)}: ${c}`;
    bar.appendChild(t);
    if (c) mk("text", { x: pad + i * bw + bw / 2, y: H - pad - bh - 3, "text-anchor": "middle", class: "tick" }, String(c));
  });
  mk("text", { x: pad, y: H - 6, class: "tick" }, fmtNum(edges[0]));
  mk("text", { x: W - pad, y: H - 6, "text-anchor": "end", class: "tick" }, fmtNum(edges.at(-1)));
  mk("text", { x: W / 2, y: H - 6, "text-anchor": "middle", class: "axis-label" }, "reward");
  return svg;
}

function dryRunReport(job) {
  const r = job.dry_run_report || {};
  const pct = (v) => (typeof v === "number" ? `${(v * 100).toFixed(0)} %` : "—");
  // the flags that happened first: a 0 % row says the grader checked for it and it never occurred
  const flags = Object.entries(r.flag_rates || {}).sort((a, b) => b[1] - a[1]);
  return h("div", { class: "dry-report", "data-dry-run": job.id },
    r.warning ? h("p", { class: "warn-text", role: "note" }, "⚠ ", r.warning) : null,
    h("p", { "data-field": "summary" }, r.summary || ""),
    h("div", { class: "two-col" },
      h("div", {},
        h("h3", {}, "Reward histogram"),
        histogram(r.reward_histogram),
        h("p", { class: "sub" }, `${r.completions ?? "—"} completions: ${r.rows_sampled ?? "—"} rows × ${r.group_size ?? "—"}`)),
      h("dl", { class: "kv" },
        h("dt", {}, "Reward mean ± std"), h("dd", { "data-field": "reward" }, `${fmtNum(r.reward_mean)} ± ${fmtNum(r.reward_std)}`),
        h("dt", {}, "Zero-variance groups"), h("dd", { "data-field": "zero_variance" }, pct(r.zero_variance_group_fraction)),
        h("dt", {}, "Seconds per step"), h("dd", { "data-field": "seconds_per_step" }, fmtNum(r.seconds_per_step)),
        h("dt", {}, "Estimated duration"), h("dd", { "data-field": "estimate" }, fmtDuration(r.estimated_total_seconds)),
        h("dt", {}, "Completion length"), h("dd", {}, `${fmtNum(r.completion_length_mean)} tokens`),
        Object.keys(r.rewards || {}).length
          ? [h("dt", {}, "Per grader"), h("dd", { class: "mono" }, Object.entries(r.rewards).map(([k, v]) => `${k}=${fmtNum(v)}`).join("  "))]
          : null)),
    h("h3", {}, "Parse-failure flags (fraction of completions)"),
    flags.length
      ? h("table", { class: "flag-rates" }, h("tbody", {}, flags.map(([k, v]) => h("tr", { "data-flag": k, class: v > 0 ? "nonzero" : null },
        h("td", { class: "mono" }, k), h("td", { class: "num" }, pct(v))))))
      : h("p", { class: "sub" }, "No flags."),
    (r.examples || []).length
      ? [h("h3", {}, "Examples"), h("ol", { class: "dry-examples" }, r.examples.map((ex) => h("li", {},
        h("span", { class: "sub" }, ex.prompt || ""), " → ", h("code", {}, ex.completion === "" ? "(empty)" : ex.completion),
        " ", h("strong", {}, `reward ${fmtNum(ex.reward)}`))))]
      : null);
}

export function mountCreate(root, ctx) {
  document.title = "New job · vrft";
  const controller = new AbortController();
  ctx.onCleanup(() => controller.abort());
  const signal = controller.signal;

  let method = "reinforcement";
  const supervised = () => method === "supervised";
  const methodRadios = Object.entries(METHODS).map(([value, m]) => h("label", { class: "method-option", for: `create-method-${value}` },
    h("input", { type: "radio", name: "create-method", id: `create-method-${value}`, value, checked: value === method }),
    h("span", {}, h("strong", {}, m.label), h("span", { class: "sub" }, m.help))));

  const fileSelect = (id) => h("select", { id, name: id });
  const trainSel = fileSelect("create-training-file");
  const validSel = fileSelect("create-validation-file");
  const uploadInput = (id) => h("input", { type: "file", id, accept: ".jsonl,.zip,.tar,.gz,.tgz,.parquet" });
  const trainUpload = uploadInput("create-training-upload");
  const validUpload = uploadInput("create-validation-upload");
  const trainStatus = h("p", { class: "sub", role: "status", id: "create-training-status" });
  const validStatus = h("p", { class: "sub", role: "status", id: "create-validation-status" });
  // a picked file that does not suit the chosen method (the server would refuse the job with a 422)
  const trainSuits = h("div", { id: "create-training-suits", class: "suits", "aria-live": "polite", hidden: true });
  const validSuits = h("div", { id: "create-validation-suits", class: "suits", "aria-live": "polite", hidden: true });
  trainSel.setAttribute("aria-describedby", "create-training-suits");
  validSel.setAttribute("aria-describedby", "create-validation-suits");
  const modelSel = h("select", { id: "create-model", name: "model" }, h("option", { value: "" }, "Loading models…"));
  const suffix = h("input", { type: "text", id: "create-suffix", maxlength: 64, placeholder: "optional, e.g. colours", spellcheck: "false" });
  const seed = h("input", { type: "text", id: "create-seed", inputmode: "numeric", placeholder: "random", spellcheck: "false" });

  const graderTitle = h("h2", { id: "create-grader-title" }, "4 · Grader");
  const graderIntro = h("p", { class: "sub", id: "create-grader-intro" });
  const graderOn = h("input", { type: "checkbox", id: "create-grader-enabled", "aria-describedby": "create-grader-enabled-note" });
  const graderOnNote = h("span", { class: "sub", id: "create-grader-enabled-note" });
  const graderToggle = h("div", { class: "grader-toggle" },
    h("label", { for: "create-grader-enabled" }, graderOn, " Score the validation file's greedy answers with a grader"), " ", graderOnNote);
  const presetSel = h("select", { id: "create-grader-preset" },
    Object.keys(GRADER_PRESETS).map((k) => h("option", { value: k }, `visual_rft · ${k}`)),
    h("option", { value: "custom" }, "custom (edit the JSON)"));
  const graderText = h("textarea", { id: "create-grader-json", rows: 9, spellcheck: "false", class: "mono",
    "aria-describedby": "create-grader-feedback" });
  const graderFeedback = h("div", { id: "create-grader-feedback", class: "grader-feedback", "aria-live": "polite" });
  const graderEditor = h("div", { id: "create-grader-editor" },
    h("div", { class: "field-grid" }, h("label", { for: "create-grader-preset" }, "Preset"), presetSel),
    h("label", { for: "create-grader-json", class: "block-label" }, "Grader JSON (checked by the server as you type)"),
    graderText, graderFeedback);

  const hpInputs = new Map();
  const resolvedCells = new Map();
  const hpRowEls = new Map();
  const hpHelp = new Map();
  const hpRows = HP_FIELDS.map((f) => {
    const input = h("input", { type: "text", id: fieldId(f.name), inputmode: "decimal", placeholder: f.auto ? "auto" : String(f.def),
      "data-hp": f.name, spellcheck: "false", autocomplete: "off" });
    hpInputs.set(f.name, input);
    const resolved = h("td", { class: "mono resolved", "data-resolved": f.name }, "—");
    resolvedCells.set(f.name, resolved);
    const help = f.help ? h("div", { class: "sub" }) : null;
    if (help) hpHelp.set(f.name, help);
    const row = h("tr", { "data-hp-row": f.name },
      h("th", { scope: "row" }, h("label", { for: fieldId(f.name) }, h("code", {}, f.name)), help),
      h("td", {}, input),
      resolved);
    hpRowEls.set(f.name, row);
    return row;
  });
  const hpIntro = h("p", { class: "sub", id: "create-hp-intro" });
  const moreHp = h("textarea", { id: "create-more-hp", rows: 3, class: "mono", spellcheck: "false" });
  const drySamples = h("input", { type: "text", id: "create-dry-samples", inputmode: "numeric", value: "8" });
  const formError = h("p", { class: "form-error", id: "create-error", role: "alert" });
  const planLine = h("p", { class: "sub plan", id: "create-plan", "aria-live": "polite" });
  const dryBtn = h("button", { type: "button", id: "create-dry-run", "aria-describedby": "create-dry-note" }, "Dry run");
  const dryNote = h("span", { class: "sub", id: "create-dry-note" });
  const launchBtn = h("button", { type: "button", class: "primary", id: "create-launch" }, "Launch job");
  const dryIntro = h("p", { class: "sub" },
    "A dry run samples a few training rows, generates completions with the base model, grades them and times one step — without training.");
  const dryBox = h("div", { id: "create-dry-report" }, dryIntro);

  const card = (id, title, ...children) => h("section", { class: "card", id, "aria-labelledby": `${id}-title` }, h("h2", { id: `${id}-title` }, title), ...children);
  replace(root, h("section", { class: "page create-page", "aria-labelledby": "create-title" },
    h("div", { class: "page-head" }, h("h1", { id: "create-title" }, "New fine-tuning job")),
    card("create-method", "1 · Method",
      h("fieldset", { class: "method-choice" }, h("legend", { class: "visually-hidden" }, "Training method"), methodRadios)),
    card("create-data", "2 · Data",
      h("div", { class: "field-grid" },
        h("label", { for: "create-training-file" }, "Training file"), trainSel, trainSuits,
        h("label", { for: "create-training-upload" }, "…or upload one"), h("div", {}, trainUpload, trainStatus),
        h("label", { for: "create-validation-file" }, "Validation file"), validSel, validSuits,
        h("label", { for: "create-validation-upload" }, "…or upload one"), h("div", {}, validUpload, validStatus))),
    card("create-model-card", "3 · Base model",
      h("div", { class: "field-grid" },
        h("label", { for: "create-model" }, "Model"), h("div", {}, modelSel,
          h("p", { class: "sub" }, "A base model, or start from a fine-tuned model of this project (a succeeded job's).")),
        h("label", { for: "create-suffix" }, "Suffix"), suffix,
        h("label", { for: "create-seed" }, "Seed"), seed)),
    h("section", { class: "card", id: "create-grader", "aria-labelledby": "create-grader-title" },
      graderTitle, graderIntro, graderToggle, graderEditor),
    card("create-hp", "5 · Hyperparameters",
      hpIntro,
      h("div", { class: "table-scroll" }, h("table", { class: "hp-table" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Hyperparameter"), h("th", { scope: "col" }, "Value"), h("th", { scope: "col" }, "Resolved"))),
        h("tbody", {}, hpRows))),
      h("label", { for: "create-more-hp", class: "block-label" }, "More hyperparameters (JSON object, merged in)"), moreHp),
    card("create-run", "6 · Dry run and launch",
      h("div", { class: "actions" },
        h("label", { for: "create-dry-samples" }, "Rows to sample"), drySamples, dryBtn, launchBtn, dryNote),
      planLine, formError, dryBox)));

  // ---- data files: each shows the methods it suits; a pick that does not suit the method is warned of ----
  let files = [];
  const validations = new Map(); // file id → its /validation (for the line that rules a method out)
  const methodsOf = (f) => f.methods || [];
  function fillFileSelects(selectTrain, selectValid) {
    const usable = files.filter((f) => f.status === "processed");
    const opts = (sel, chosen, allowNone) => {
      const current = chosen ?? sel.value;
      replace(sel,
        allowNone ? h("option", { value: "" }, "none") : (usable.length ? null : h("option", { value: "" }, "No processed files yet: upload one")),
        usable.map((f) => h("option", { value: f.id, selected: f.id === current, "data-methods": methodsOf(f).join(" ") },
          `${f.filename} · ${f.rows ?? "?"} rows · ${methodsOf(f).join(" + ") || "no method"} · ${f.id}`)));
      if (current && usable.some((f) => f.id === current)) sel.value = current;
    };
    opts(trainSel, selectTrain, false);
    opts(validSel, selectValid, true);
    syncFiles();
  }
  async function showSuits(sel, box) {
    const f = files.find((x) => x.id === sel.value);
    if (!f || methodsOf(f).includes(method)) { replace(box); box.hidden = true; return; }
    const want = method;
    box.hidden = false;
    // the server's reason names the line and field ("line 1: field 'messages': …")
    const say = (why) => replace(box, h("p", { class: "warn-text", role: "note", "data-unsuited": want },
      `⚠ This file does not suit a ${want} job${why ? `: ${why.message}` : "."} (It suits ${methodsOf(f).join(" and ") || "no method"}.)`));
    say(null);
    try {
      if (!validations.has(f.id)) {
        const { data } = await request(`/v1/files/${encodeURIComponent(f.id)}/validation`, { signal });
        validations.set(f.id, data);
      }
      if (sel.value === f.id && method === want) say((validations.get(f.id).unsuited || {})[want] || null);
    } catch (err) {
      if (err.name !== "AbortError") console.warn(`validation of ${f.id}: ${errText(err)}`);
    }
  }
  function syncFiles() {  // (called once the page is set up: files load after it)
    showSuits(trainSel, trainSuits);
    showSuits(validSel, validSuits);
    syncGrader();
    schedulePlan();  // a file picked by code (an upload, the first load) fires no change event
  }
  trainSel.addEventListener("change", syncFiles);
  validSel.addEventListener("change", syncFiles);
  async function loadFiles(selectTrain, selectValid) {
    const { data } = await request("/v1/files?limit=100", { signal });
    files = data.data;
    fillFileSelects(selectTrain, selectValid);
  }
  async function upload(input, status, which) {
    const file = input.files[0];
    if (!file) return;
    const fd = new FormData();
    fd.append("purpose", "fine-tune");
    fd.append("file", file, file.name);
    status.textContent = `Uploading ${file.name}…`;
    status.classList.remove("form-error");
    try {
      const { data } = await request("/v1/files", { method: "POST", form: fd, signal });
      if (data.status !== "processed") {
        status.textContent = `Uploaded ${data.filename} as ${data.id}; validation is still running (see Files).`;
      } else {
        status.textContent = `Uploaded ${data.filename} as ${data.id} (${data.rows ?? "?"} rows; suits ${methodsOf(data).join(" and ") || "no method"}).`;
      }
      await loadFiles(which === "train" ? data.id : undefined, which === "valid" ? data.id : undefined);
    } catch (err) {
      if (err.name === "AbortError") return;
      const v = err instanceof ApiError && err.extra && err.extra.validation;
      const first = v && (v.problems || [])[0];
      status.textContent = `Upload failed: ${errText(err)}${first ? ` — line ${first.line}, ${first.field}: ${first.message}` : ""}`;
      status.classList.add("form-error");
    } finally {
      input.value = "";
    }
  }
  trainUpload.addEventListener("change", () => upload(trainUpload, trainStatus, "train"));
  validUpload.addEventListener("change", () => upload(validUpload, validStatus, "valid"));

  // ---- models: the base models, then this project's fine-tuned ones (GET /v1/models lists both) ----
  async function loadModels() {
    const { data } = await request("/v1/models", { signal });
    const base = data.data.filter((m) => !m.fine_tuning_job);
    const tuned = data.data.filter((m) => m.fine_tuning_job);
    replace(modelSel,
      base.length ? h("optgroup", { label: "Base models" }, base.map((m) => h("option", { value: m.id }, m.id)))
        : h("option", { value: "" }, "No base models configured"),
      tuned.length ? h("optgroup", { label: "Start from a fine-tuned model" },
        tuned.map((m) => h("option", { value: m.id, "data-job": m.fine_tuning_job }, `${m.id} (${m.fine_tuning_job})`))) : null);
  }

  // ---- grader: preset or JSON, validated by the server as it is typed ----
  let graderValid = null; // the normalised grader, or null while invalid/unchecked
  let validateSeq = 0, validateTimer = null;
  function setPreset(name) {
    graderText.value = JSON.stringify(GRADER_PRESETS[name], null, 2);
    scheduleValidate(0);
  }
  function scheduleValidate(delay = 350) {
    clearTimeout(validateTimer);
    graderValid = null;
    validateTimer = setTimeout(validateGrader, delay);
  }
  async function validateGrader() {
    const seq = ++validateSeq;
    let grader;
    try {
      grader = JSON.parse(graderText.value);
    } catch (err) {
      graderText.setAttribute("aria-invalid", "true");
      replace(graderFeedback, h("p", { class: "form-error", "data-grader-state": "invalid" }, `Not JSON: ${err.message}`));
      return;
    }
    replace(graderFeedback, h("p", { class: "sub", "data-grader-state": "checking" }, "Checking…"));
    try {
      const { data } = await request("/v1/fine_tuning/alpha/graders/validate", { method: "POST", body: { grader }, signal });
      if (seq !== validateSeq) return;
      graderValid = grader;
      graderText.removeAttribute("aria-invalid");
      replace(graderFeedback, h("p", { class: "ok-text", "data-grader-state": "valid" }, `✓ Valid ${data.grader.type} grader "${data.grader.name}"`),
        h("details", {}, h("summary", {}, "Normalised grader (as a job stores it)"),
          h("pre", { class: "json", tabindex: "0" }, JSON.stringify(data.grader, null, 2))));
    } catch (err) {
      if (err.name === "AbortError" || seq !== validateSeq) return;
      graderText.setAttribute("aria-invalid", "true");
      replace(graderFeedback, h("p", { class: "form-error", "data-grader-state": "invalid" }, errText(err),
        err.param ? h("span", { class: "param" }, " — field ", h("code", { "data-field": "param" }, err.param)) : null));
    }
  }
  presetSel.addEventListener("change", () => { if (presetSel.value !== "custom") setPreset(presetSel.value); });
  graderText.addEventListener("input", () => {
    const preset = Object.entries(GRADER_PRESETS).find(([, g]) => { try { return JSON.stringify(JSON.parse(graderText.value)) === JSON.stringify(g); } catch (_) { return false; } });
    presetSel.value = preset ? preset[0] : "custom";
    scheduleValidate();
  });
  // a supervised job's grader only scores the validation file: it is sent when one is picked and it is ticked
  const sendsGrader = () => !supervised() || (Boolean(validSel.value) && graderOn.checked);
  function syncGrader() {
    const sft = supervised();
    graderTitle.textContent = sft ? "4 · Grader (optional)" : "4 · Grader";
    graderIntro.textContent = sft
      ? "A supervised job learns from the assistant's answers; a grader only scores its greedy answers on the validation file at each evaluation."
      : "Scores every sampled completion: the reward GRPO learns from.";
    graderToggle.hidden = !sft;
    graderOn.disabled = !validSel.value;
    graderOnNote.textContent = validSel.value ? "" : "Pick a validation file first: the grader scores answers on it.";
    graderEditor.hidden = !sendsGrader();
  }
  graderOn.addEventListener("change", syncGrader);

  // ---- the request body ----
  const sent = (f) => !(f.grpo && supervised());
  // `quiet`: the live plan reads the form as the user types; only Launch / Dry run move the focus
  function hyperparameters(quiet = false) {
    let hp = {};
    const more = moreHp.value.trim();
    if (more) {
      try { hp = JSON.parse(more); } catch (err) { throw new Error(`More hyperparameters: not JSON (${err.message})`); }
      if (!hp || typeof hp !== "object" || Array.isArray(hp)) throw new Error("More hyperparameters: must be a JSON object");
    }
    for (const f of HP_FIELDS.filter(sent)) {
      const input = hpInputs.get(f.name);
      let v;
      try { v = parseField(f, input.value); input.removeAttribute("aria-invalid"); } catch (err) {
        input.setAttribute("aria-invalid", "true");
        if (!quiet) input.focus();
        throw err;
      }
      if (v === undefined) continue;
      const [head, tail] = f.name.split(".");
      if (tail) hp[head] = { ...(hp[head] || {}), [tail]: v };
      else hp[head] = v;
    }
    return hp;
  }
  function body(dryRun, quiet = false) {
    if (!trainSel.value) throw new Error("Pick or upload a training file.");
    if (!modelSel.value) throw new Error("Pick a base model.");
    const block = { hyperparameters: hyperparameters(quiet) };
    if (sendsGrader()) {
      try { block.grader = JSON.parse(graderText.value); } catch (err) { throw new Error(`Grader: not JSON (${err.message})`); }
    }
    const b = { model: modelSel.value, training_file: trainSel.value, method: { type: method, [method]: block } };
    if (validSel.value) b.validation_file = validSel.value;
    if (suffix.value.trim()) b.suffix = suffix.value.trim();
    if (seed.value.trim()) {
      const n = Number(seed.value.trim());
      if (!Number.isInteger(n) || n < 0) throw new Error(`Seed: "${seed.value}" is not a whole number ≥ 0`);
      b.seed = n;
    }
    if (dryRun) {
      if (supervised()) throw new Error("A supervised job has no dry run.");
      b.dry_run = true;
      const n = Number(drySamples.value.trim() || "8");
      if (!Number.isInteger(n) || n < 1) throw new Error(`Rows to sample: "${drySamples.value}" is not a whole number ≥ 1`);
      b.dry_run_samples = n;
    }
    return b;
  }

  // the resolved column: the server's plan for the form as it stands (else a dry run's values for the
  // method it ran with), else each auto's rule in words
  let lastDry = null, lastPlan = null, planSeq = 0, planTimer = null;
  async function refreshPlan() {
    const seq = ++planSeq;
    let b;
    try { b = body(false, true); } catch (err) {  // the form's own complaint, shown without moving the focus
      lastPlan = null;
      planLine.setAttribute("data-plan-error", "form");
      planLine.textContent = err.message;
      showResolved();
      return;
    }
    try {
      const { data } = await request("/v1/fine_tuning/jobs/validate", { method: "POST", body: b, signal });
      if (seq !== planSeq) return;  // a later edit's answer is the one to show
      lastPlan = data;
      planLine.removeAttribute("data-plan-error");
      planLine.textContent = `The server accepts this job: ${data.total_steps} ${data.method.type} steps`
        + (data.base_model !== data.model ? `, starting from ${data.model}` : "") + ".";
    } catch (err) {
      if (err.name === "AbortError" || seq !== planSeq) return;
      lastPlan = null;
      planLine.setAttribute("data-plan-error", err.param || "");
      planLine.textContent = `The server would refuse this job: ${errText(err)}${err.param ? ` (field ${err.param})` : ""}`;
    }
    showResolved();
  }
  function schedulePlan() {
    clearTimeout(planTimer);
    planTimer = setTimeout(refreshPlan, 300);
  }
  ctx.onCleanup(() => clearTimeout(planTimer));
  root.addEventListener("change", schedulePlan);
  root.addEventListener("input", schedulePlan);
  function showResolved() {
    const fromServer = lastPlan && lastPlan.method.type === method ? lastPlan
      : lastDry && lastDry.method && lastDry.method.type === method ? lastDry : null;
    const res = fromServer ? fromServer.resolved_hyperparameters || {} : null;
    for (const f of HP_FIELDS) {
      const cell = resolvedCells.get(f.name);
      const input = hpInputs.get(f.name).value.trim();
      const fromAuto = f.auto && (input === "" || input.toLowerCase() === "auto");
      const v = res ? getPath(res, f.name) : undefined;
      if (v !== undefined) replace(cell, fmtNum(v, 8), fromAuto ? h("span", { class: "sub" }, " (auto)") : null);
      else if (fromAuto && AUTO_RULES[f.name]) replace(cell, h("span", { class: "sub rule" }, perMethod(AUTO_RULES[f.name], method)));
      else replace(cell, "—");
    }
  }
  for (const input of hpInputs.values()) input.addEventListener("change", showResolved);

  let dryPoller = null, dryRunning = false, creating = false;
  function syncButtons() {
    dryBtn.disabled = creating || dryRunning || supervised();
    drySamples.disabled = supervised();
    launchBtn.disabled = creating;
    dryNote.textContent = supervised() ? "No dry run for a supervised job: it has no completions to sample and grade." : "";
  }
  async function create(dryRun) {
    formError.textContent = "";
    let b;
    try { b = body(dryRun); } catch (err) { formError.textContent = err.message; return null; }
    creating = true;
    syncButtons();
    try {
      const { data } = await request("/v1/fine_tuning/jobs", { method: "POST", body: b, signal });
      return data;
    } catch (err) {
      if (err.name !== "AbortError") formError.textContent = `Could not create the job: ${errText(err)}${err.param ? ` (field ${err.param})` : ""}`;
      return null;
    } finally {
      creating = false;
      syncButtons();
    }
  }

  // ---- the method: what the form asks for and sends ----
  function applyMethod() {
    const sft = supervised();
    for (const f of HP_FIELDS) {
      hpRowEls.get(f.name).hidden = !sent(f);
      if (hpHelp.has(f.name)) hpHelp.get(f.name).textContent = perMethod(f.help, method);
    }
    hpIntro.textContent = "Leave a field empty for its default or \"auto\"; the resolved column shows what the job will train "
      + "with, as the server resolves it for the form as it stands.";
    moreHp.placeholder = sft ? '{"gradient_accumulation_steps": 2}' : '{"loss_type": "dapo"}';
    dryIntro.hidden = sft;
    showResolved();
    syncButtons();
    syncFiles();
  }
  for (const radio of root.querySelectorAll('input[name="create-method"]')) {
    radio.addEventListener("change", () => { if (radio.checked) { method = radio.value; applyMethod(); } });
  }

  dryBtn.addEventListener("click", async () => {
    const job = await create(true);
    if (!job) return;
    lastDry = job;
    showResolved();
    if (dryPoller) dryPoller.stop();
    replace(dryBox, h("p", { class: "sub", "data-dry-run-status": job.status }, `Dry run ${job.id} is ${job.status}…`));
    dryRunning = true;
    syncButtons();
    dryPoller = ctx.startPoller(async () => {
      const { data, pollAfterMs } = await request(`/v1/fine_tuning/jobs/${encodeURIComponent(job.id)}`, { signal });
      if (!TERMINAL.has(data.status)) {
        replace(dryBox, h("p", { class: "sub", "data-dry-run-status": data.status }, `Dry run ${data.id} is ${data.status}…`,
          data.queue_position ? ` (queue position ${data.queue_position})` : ""));
        return pollAfterMs;
      }
      dryRunning = false;
      syncButtons();
      lastDry = data;
      showResolved();
      if (data.status === "succeeded" && data.dry_run_report) {
        replace(dryBox, h("h3", {}, "Dry run report ", h("a", { href: `#/jobs/${encodeURIComponent(data.id)}`, class: "sub mono" }, data.id)), dryRunReport(data));
      } else {
        const e = data.error || {};
        replace(dryBox, h("div", { class: "error-panel card", role: "alert", "data-dry-run-status": data.status },
          h("strong", {}, `Dry run ${data.status}`), e.code ? [": ", h("code", {}, e.code)] : null, h("p", {}, e.message || "")));
      }
      return "stop";
    });
  });

  launchBtn.addEventListener("click", async () => {
    const job = await create(false);
    if (!job) return;
    ctx.toast(`Created ${job.id}.`);
    location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
  });

  setPreset("classification");
  applyMethod();
  Promise.all([loadFiles(), loadModels()]).catch((err) => {
    if (err.name !== "AbortError") formError.textContent = `Could not load files or models: ${errText(err)}`;
  });
}

// Playground: ask a job's base model and its tuned model the same question about one image, side by
// side; the job's own grader scores both answers and the boxes it read are drawn on the image.
import { ApiError, fetchText, request } from "./api.js";
import { fmtNum, h, replace, s } from "./dom.js";

const MAX_ROWS = 50;
const STYLES = {
  reference: { stroke: "#16a34a", dash: null, label: "reference (solid green)" },
  base: { stroke: "#2563eb", dash: "2 2", label: "base answer (dotted blue)" },
  tuned: { stroke: "#ea580c", dash: "5 3", label: "tuned answer (dashed orange)" },
};

const errText = (err) => (err instanceof ApiError ? err.describe() : String(err && err.message || err));

/** One dataset row as the playground uses it: {image (data URL) | null, question, item}. */
export function rowOf(obj) {
  if (Array.isArray(obj.messages)) { // OpenAI RFT JSONL: the user turn's text and image parts
    const user = obj.messages.find((m) => m && m.role === "user") || {};
    const parts = Array.isArray(user.content) ? user.content : [{ type: "text", text: String(user.content ?? "") }];
    const text = parts.filter((p) => p && p.type === "text").map((p) => p.text).join("\n");
    const img = parts.find((p) => p && p.type === "image_url");
    const { messages, ...item } = obj;
    return { image: img && img.image_url ? img.image_url.url : null, question: text, item };
  }
  const { image, ...item } = obj; // Visual-RFT JSONL: image, problem, solution, …
  return { image: typeof image === "string" && image.startsWith("data:") ? image : null, question: String(obj.problem ?? ""), item };
}

function boxLayer(boxes, style, kind) {
  return (boxes || []).map((b, k) => {
    const [x1, y1, x2, y2] = b.map(Number);
    if (![x1, y1, x2, y2].every(Number.isFinite)) return null;
    return s("rect", { x: Math.min(x1, x2) * 100, y: Math.min(y1, y2) * 100, width: Math.abs(x2 - x1) * 100, height: Math.abs(y2 - y1) * 100,
      fill: "none", stroke: style.stroke, "stroke-width": 2, "stroke-dasharray": style.dash, "vector-effect": "non-scaling-stroke",
      "data-box": kind, class: `box ${kind}` }, s("title", {}, `${kind} box ${k + 1}`));
  });
}

function readImage(file) {
  return new Promise((resolve, reject) => {
    const fr = new FileReader();
    fr.onload = () => resolve(fr.result);
    fr.onerror = () => reject(new Error(`Could not read ${file.name}`));
    fr.readAsDataURL(file);
  });
}

function imageSize(url) {
  return new Promise((resolve) => {
    const img = new Image();
    img.onload = () => resolve([img.naturalWidth, img.naturalHeight]);
    img.onerror = () => resolve(null);
    img.src = url;
  });
}

export function mountPlayground(root, jobIdFromHash, ctx) {
  document.title = "Playground · vrft";
  const controller = new AbortController();
  ctx.onCleanup(() => controller.abort());
  const signal = controller.signal;

  const jobSel = h("select", { id: "pg-job" }, h("option", { value: "" }, "Loading jobs…"));
  const modelSel = h("select", { id: "pg-model" });
  const sourceInfo = h("p", { class: "sub", id: "pg-source-info" });
  const rowSel = h("select", { id: "pg-row" }, h("option", { value: "" }, "—"));
  const upload = h("input", { type: "file", id: "pg-image", accept: "image/png,image/jpeg,image/webp,image/gif" });
  const question = h("textarea", { id: "pg-question", rows: 3, placeholder: "What is in this image? Answer in <answer></answer>." });
  const itemText = h("textarea", { id: "pg-item", rows: 3, class: "mono", spellcheck: "false", placeholder: '{"solution": "<answer>red</answer>"}' });
  const maxTokens = h("input", { type: "text", id: "pg-max-tokens", inputmode: "numeric", value: "64" });
  const askBtn = h("button", { type: "submit", class: "primary", id: "pg-ask" }, "Ask both models");
  const status = h("p", { class: "sub", id: "pg-status", role: "status", "aria-live": "polite" });
  const preview = h("div", { class: "img-wrap pg-image" }, h("div", { class: "no-image" }, "No image yet: pick a row or upload one."));
  const legend = h("figcaption", { class: "box-legend", hidden: true });
  const answers = h("div", { class: "pg-answers", id: "pg-answers" });

  const form = h("form", { class: "pg-form", "aria-label": "Ask the base and tuned model" },
    h("div", { class: "field-grid" },
      h("label", { for: "pg-job" }, "Job"), jobSel,
      h("label", { for: "pg-model" }, "Tuned model"), modelSel,
      h("label", { for: "pg-row" }, "Dataset row"), h("div", {}, rowSel, sourceInfo),
      h("label", { for: "pg-image" }, "…or upload an image"), upload,
      h("label", { for: "pg-question" }, "Question"), question,
      h("label", { for: "pg-item" }, "Reference fields (item JSON, for the grader)"), itemText,
      h("label", { for: "pg-max-tokens" }, "max_tokens"), maxTokens),
    h("div", { class: "actions" }, askBtn), status);

  replace(root, h("section", { class: "page playground-page", "aria-labelledby": "pg-title" },
    h("div", { class: "page-head" }, h("h1", { id: "pg-title" }, "Playground"),
      h("span", { class: "sub" }, "Base vs tuned, greedy (temperature 0), scored by the job's grader")),
    h("div", { class: "pg-layout" },
      h("section", { class: "card", "aria-label": "Question" }, form),
      h("figure", { class: "card pg-figure", "aria-label": "Image" }, preview, legend)),
    answers));

  const state = { jobs: [], job: null, rows: [], image: null, size: null, boxes: {} };

  function drawImage() {
    if (!state.image) {
      replace(preview, h("div", { class: "no-image" }, "No image yet: pick a row or upload one."));
      legend.hidden = true;
      return;
    }
    const kinds = Object.keys(STYLES).filter((k) => (state.boxes[k] || []).length);
    const overlay = kinds.length
      ? s("svg", { class: "box-overlay", viewBox: "0 0 100 100", preserveAspectRatio: "none", role: "img",
        "aria-label": kinds.map((k) => `${state.boxes[k].length} ${k} box${state.boxes[k].length === 1 ? "" : "es"}`).join(", ") },
      kinds.map((k) => boxLayer(state.boxes[k], STYLES[k], k)))
      : null;
    replace(preview, h("img", { src: state.image, alt: "The image both models are asked about", "data-pg-image": "" }), overlay);
    legend.hidden = !kinds.length;
    replace(legend, kinds.map((k) => h("span", { class: "legend-item" },
      s("svg", { width: 26, height: 10, "aria-hidden": "true" }, s("line", { x1: 1, y1: 5, x2: 25, y2: 5, stroke: STYLES[k].stroke, "stroke-width": 2.5, "stroke-dasharray": STYLES[k].dash })),
      " ", STYLES[k].label)));
  }

  async function setImage(url) {
    state.image = url;
    state.size = url ? await imageSize(url) : null;
    state.boxes = {};
    drawImage();
  }

  function pickRow(i) {
    const row = state.rows[i];
    if (!row) return;
    question.value = row.question;
    itemText.value = Object.keys(row.item).length ? JSON.stringify(row.item) : "";
    replace(answers);
    setImage(row.image);
    if (!row.image) status.textContent = "This row's image is not a data URL (an archive path?): upload the image instead.";
  }

  // A job picked while the last pick's lists are still loading (or the same job picked twice: the
  // first load and the select's change event) must not get both loads' rows and checkpoints.
  let picks = 0;

  async function loadRows(job, pick) {
    state.rows = [];
    replace(rowSel, h("option", { value: "" }, "—"));
    const fileId = job.validation_file || job.training_file;
    const which = job.validation_file ? "validation" : "training (the job has no validation file)";
    if (!fileId) return;
    sourceInfo.textContent = `Rows of the ${which} file ${fileId}…`;
    let text, truncated;
    try {
      ({ text, truncated } = await fetchText(`/v1/files/${encodeURIComponent(fileId)}/content`, { signal }));
    } catch (err) {
      if (err.name !== "AbortError" && pick === picks) sourceInfo.textContent = `Could not read ${fileId}: ${errText(err)}`;
      return;
    }
    if (pick !== picks) return;
    const lines = text.split("\n");
    if (truncated) lines.pop(); // the last line may be cut
    const rows = [];
    for (const line of lines) {
      if (rows.length >= MAX_ROWS) break;
      if (!line.trim()) continue;
      try { rows.push(rowOf(JSON.parse(line))); } catch (_) {
        sourceInfo.textContent = `${fileId} is not JSONL (an archive or Parquet file): upload an image instead.`;
        return;
      }
    }
    state.rows = rows;
    replace(rowSel, h("option", { value: "" }, "— pick a row —"), rows.map((r, i) =>
      h("option", { value: i }, `row ${i + 1}: ${r.question.slice(0, 60)}${r.question.length > 60 ? "…" : ""}`)));
    sourceInfo.textContent = `First ${rows.length} rows of the ${which} file ${fileId}.`;
  }

  async function selectJob(id) {
    const pick = ++picks;
    const job = state.jobs.find((j) => j.id === id);
    state.job = job || null;
    replace(answers);
    if (!job) { replace(modelSel); return; }
    if (location.hash !== `#/playground/${encodeURIComponent(id)}`) history.replaceState(null, "", `#/playground/${encodeURIComponent(id)}`);
    const final = h("option", { value: job.fine_tuned_model }, `final · ${job.fine_tuned_model}`);
    replace(modelSel, final);
    const rowsLoad = loadRows(job, pick);
    try {
      const { data } = await request(`/v1/fine_tuning/jobs/${encodeURIComponent(id)}/checkpoints?limit=100`, { signal });
      if (pick === picks) {
        replace(modelSel, final, data.data.slice().sort((a, b) => b.step_number - a.step_number).map((c) =>
          h("option", { value: c.fine_tuned_model_checkpoint, "data-checkpoint": c.id }, `step ${c.step_number} · ${c.fine_tuned_model_checkpoint}`)));
      }
    } catch (err) {
      if (err.name !== "AbortError" && pick === picks) status.textContent = `Could not list checkpoints: ${errText(err)}`;
    }
    await rowsLoad;
  }

  async function loadJobs() {
    const { data } = await request("/v1/fine_tuning/jobs?limit=100", { signal });
    state.jobs = data.data.filter((j) => j.fine_tuned_model && j.status === "succeeded" && !j.dry_run);
    if (!state.jobs.length) {
      replace(jobSel, h("option", { value: "" }, "No succeeded jobs yet"));
      status.textContent = "The playground needs a job that succeeded: create one on the New job page.";
      return;
    }
    replace(jobSel, state.jobs.map((j) => h("option", { value: j.id }, `${j.id} · ${j.user_provided_suffix || j.model}`)));
    const chosen = state.jobs.some((j) => j.id === jobIdFromHash) ? jobIdFromHash : state.jobs[0].id;
    jobSel.value = chosen;
    await selectJob(chosen);
  }

  async function complete(model, content, tokens) {
    const { data } = await request("/v1/chat/completions", { method: "POST", signal,
      body: { model, messages: [{ role: "user", content }], max_tokens: tokens, temperature: 0 } });
    const choice = (data.choices || [])[0];
    return { text: choice && choice.message ? String(choice.message.content ?? "") : "", usage: data.usage || null };
  }

  async function grade(text, item) {
    const method = state.job.method || {};  // a supervised job's grader is optional: unscored without one
    const grader = (method[method.type] || {}).grader;
    if (!grader || !item) return null;
    const body = { grader, model_sample: text, item };
    if (state.size) body.image_size = state.size;
    const { data } = await request("/v1/fine_tuning/alpha/graders/run", { method: "POST", body, signal });
    return data;
  }

  function answerCard(kind, model, result) {
    const { answer, score, error } = result;
    const flags = score ? Object.entries(score.metadata.errors || {}).filter(([, v]) => v === true).map(([k]) => k) : [];
    return h("article", { class: `card pg-answer pg-${kind}`, "data-answer": kind },
      h("h2", {}, kind === "base" ? "Base model" : "Tuned model", h("div", { class: "sub mono" }, model)),
      error ? h("p", { class: "form-error", role: "alert", "data-field": "error" }, error)
        : [h("pre", { class: "completion-text", "data-field": "answer" }, answer.text === "" ? "(empty answer)" : answer.text),
          score
            ? h("div", { class: "pg-score" },
              h("p", {}, "reward ", h("strong", { "data-field": "reward", "data-value": score.reward }, fmtNum(score.reward))),
              Object.keys(score.sub_rewards || {}).length
                ? h("ul", { class: "grader-scores", "aria-label": "Per-grader rewards" }, Object.entries(score.sub_rewards).map(([k, v]) =>
                  h("li", { "data-grader": k }, h("span", { class: "gname" }, k), " ", h("strong", {}, fmtNum(v)))))
                : null,
              flags.map((f) => h("span", { class: "tag tag-error", "data-flag": f }, `⚠ ${f.replace(/_/g, " ")}`)))
            : h("p", { class: "sub" }, "Not scored: give reference fields (item JSON) to score with the job's grader."),
          answer.usage ? h("p", { class: "sub" }, `${answer.usage.prompt_tokens ?? "?"} prompt + ${answer.usage.completion_tokens ?? "?"} completion tokens`) : null]);
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const job = state.job;
    if (!job) { status.textContent = "Pick a job first."; return; }
    if (!state.image) { status.textContent = "Pick a row or upload an image first."; return; }
    const q = question.value.trim();
    if (!q) { status.textContent = "Ask a question."; question.focus(); return; }
    const tokens = Number(maxTokens.value.trim());
    if (!Number.isInteger(tokens) || tokens < 1) { status.textContent = `max_tokens: "${maxTokens.value}" is not a whole number ≥ 1`; return; }
    let item = null;
    if (itemText.value.trim()) {
      try { item = JSON.parse(itemText.value); } catch (err) { status.textContent = `Reference fields: not JSON (${err.message})`; return; }
      if (!item || typeof item !== "object" || Array.isArray(item)) { status.textContent = "Reference fields: must be a JSON object"; return; }
    }
    // Image first, then the question: a Visual-RFT row's user turn as the trainer and its evaluation
    // build it, so such a row is asked exactly as the job asked it. (An OpenAI chat row trains on its
    // own turns — system prompt, part order; the playground asks its image and question only.)
    const content = [{ type: "image_url", image_url: { url: state.image } }, { type: "text", text: q }];
    const models = { base: job.model, tuned: modelSel.value || job.fine_tuned_model };
    askBtn.disabled = true;
    status.textContent = "Asking both models…";
    state.boxes = {};
    drawImage();
    replace(answers);
    const results = {};
    let missing = false;
    await Promise.all(Object.entries(models).map(async ([kind, model]) => {
      try {
        const answer = await complete(model, content, tokens);
        let score = null;
        try { score = await grade(answer.text, item); } catch (err) { if (err.name !== "AbortError") results[`${kind}-grade`] = errText(err); }
        results[kind] = { answer, score };
      } catch (err) {
        if (err.name === "AbortError") return;
        if (err instanceof ApiError && err.status === 404 && err.code === "not_found") missing = true;
        results[kind] = { error: errText(err) };
      }
    }));
    if (signal.aborted) return;
    askBtn.disabled = false;
    if (missing) {
      status.textContent = "";
      replace(answers, h("div", { class: "card error-panel", role: "alert", id: "pg-unavailable" },
        h("h2", {}, "Chat completions are not available on this server"),
        h("p", {}, "POST /v1/chat/completions answered 404 not_found: this server has no inference endpoint yet. ",
          "Download the adapter from the job page and serve it elsewhere (README: “Serving the adapter elsewhere”).")));
      return;
    }
    for (const kind of ["base", "tuned"]) {
      const sc = results[kind] && results[kind].score;
      if (sc && sc.metadata && sc.metadata.boxes) {
        state.boxes[kind] = sc.metadata.boxes.prediction || [];
        state.boxes.reference = sc.metadata.boxes.reference || state.boxes.reference || [];
      }
    }
    drawImage();
    const gradeErrors = ["base", "tuned"].map((k) => results[`${k}-grade`]).filter(Boolean);
    status.textContent = gradeErrors.length ? `Scoring failed: ${gradeErrors[0]}` : "Done.";
    replace(answers, answerCard("base", models.base, results.base), answerCard("tuned", models.tuned, results.tuned));
  });

  jobSel.addEventListener("change", () => selectJob(jobSel.value));
  rowSel.addEventListener("change", () => { if (rowSel.value !== "") pickRow(Number(rowSel.value)); });
  upload.addEventListener("change", async () => {
    const file = upload.files[0];
    if (!file) return;
    try {
      rowSel.value = "";
      replace(answers);
      await setImage(await readImage(file));
      status.textContent = `Using ${file.name}${state.size ? ` (${state.size[0]}×${state.size[1]} px)` : ""}.`;
    } catch (err) {
      status.textContent = errText(err);
    }
  });

  loadJobs().catch((err) => { if (err.name !== "AbortError") status.textContent = `Could not load jobs: ${errText(err)}`; });
}

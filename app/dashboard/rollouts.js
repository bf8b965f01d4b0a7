// Rollout browser: per step, each sampled prompt (thumbnail + question) and its G completions with
// per-grader rewards, advantage and parse-failure flags; detection boxes drawn over the image.
import { fmtNum, h, replace, s } from "./dom.js";

const GT_STYLE = { stroke: "#16a34a", dash: null, label: "ground truth (solid green)" };
const PRED_STYLE = { stroke: "#ea580c", dash: "4 3", label: "predicted (dashed orange)" };

function boxRect(box, style, attrs) {
  const [x1, y1, x2, y2] = box.map(Number);
  if (![x1, y1, x2, y2].every(Number.isFinite)) return null;
  return s("rect", {
    x: Math.min(x1, x2) * 100, y: Math.min(y1, y2) * 100, width: Math.abs(x2 - x1) * 100, height: Math.abs(y2 - y1) * 100,
    fill: "none", stroke: style.stroke, "stroke-width": 2, "stroke-dasharray": style.dash, "vector-effect": "non-scaling-stroke",
    ...attrs,
  });
}

function media(r) {
  const preds = (r.completions || []).flatMap((c, i) => (c.boxes || []).map((b) => ({ b, i })));
  const gt = r.gt_boxes || [];
  const size = Array.isArray(r.image_size) ? `${r.image_size[0]}×${r.image_size[1]} px` : "";
  const wrap = h("div", { class: "img-wrap" },
    r.image ? h("img", { src: r.image, alt: `Image for prompt ${r.prompt_id}${size ? ` (${size} original)` : ""}`, loading: "lazy", "data-rollout-image": "" })
      : h("div", { class: "no-image" }, "no image"));
  const hasBoxes = gt.length || preds.length;
  if (hasBoxes) {
    const overlay = s("svg", { class: "box-overlay", viewBox: "0 0 100 100", preserveAspectRatio: "none", role: "img",
      "aria-label": `${gt.length} ground-truth and ${preds.length} predicted boxes` });
    gt.forEach((b, k) => { const el = boxRect(b, GT_STYLE, { "data-box": "gt", class: "box gt" }); if (el) { el.appendChild(s("title", {}, `ground truth ${k + 1}`)); overlay.appendChild(el); } });
    preds.forEach(({ b, i }) => { const el = boxRect(b, PRED_STYLE, { "data-box": "pred", "data-completion": i, class: "box pred" }); if (el) { el.appendChild(s("title", {}, `completion #${i + 1}`)); overlay.appendChild(el); } });
    wrap.appendChild(overlay);
  }
  return h("figure", { class: "rollout-media" }, wrap,
    hasBoxes ? h("figcaption", { class: "box-legend" },
      h("span", { class: "legend-item" }, s("svg", { width: 26, height: 10, "aria-hidden": "true" }, s("line", { x1: 1, y1: 5, x2: 25, y2: 5, stroke: GT_STYLE.stroke, "stroke-width": 2.5 })), " ", GT_STYLE.label),
      h("span", { class: "legend-item" }, s("svg", { width: 26, height: 10, "aria-hidden": "true" }, s("line", { x1: 1, y1: 5, x2: 25, y2: 5, stroke: PRED_STYLE.stroke, "stroke-width": 2.5, "stroke-dasharray": PRED_STYLE.dash })), " ", PRED_STYLE.label))
      : (size ? h("figcaption", { class: "sub" }, size) : null));
}

function signed(v) {
  if (typeof v !== "number") return "—";
  return `${v > 0 ? "+" : ""}${fmtNum(v)}`;
}

function completion(c, i, card) {
  const flags = Object.entries(c.flags || {}).filter(([, v]) => v === true).map(([k]) => k);
  const li = h("li", { class: `completion${flags.length ? " has-error" : ""}`, "data-completion": i, tabindex: "0",
    "aria-label": `Completion ${i + 1}, reward ${fmtNum(c.reward)}${flags.length ? ", parse error" : ""}` },
    h("div", { class: "completion-head" },
      h("span", { class: "idx" }, `#${i + 1}`),
      h("span", { class: "reward", "data-field": "reward" }, "reward ", h("strong", {}, fmtNum(c.reward))),
      h("span", { class: `adv ${c.advantage > 0 ? "pos" : c.advantage < 0 ? "neg" : ""}`, "data-field": "advantage" }, "advantage ", h("strong", {}, signed(c.advantage))),
      flags.map((f) => h("span", { class: "tag tag-error", "data-flag": f, title: `Grader flag ${f}` }, "⚠ parse error", h("span", { class: "flag-name" }, ` (${f.replace(/_/g, " ")})`)))),
    Object.keys(c.rewards || {}).length
      ? h("ul", { class: "grader-scores", "aria-label": "Per-grader rewards" },
        Object.entries(c.rewards).map(([k, v]) => h("li", { "data-grader": k }, h("span", { class: "gname" }, k), " ", h("strong", {}, fmtNum(v)))))
      : null,
    h("pre", { class: "completion-text" }, c.text === "" ? "(empty completion)" : c.text));
  const highlight = (on) => card.querySelectorAll(`.box.pred[data-completion="${i}"]`).forEach((b) => b.classList.toggle("hl", on));
  li.addEventListener("mouseenter", () => highlight(true));
  li.addEventListener("mouseleave", () => highlight(false));
  li.addEventListener("focus", () => highlight(true));
  li.addEventListener("blur", () => highlight(false));
  return li;
}

function rolloutCard(r) {
  const card = h("article", { class: "rollout", "data-prompt-id": r.prompt_id, "data-step": r.step });
  const ref = r.reference || {};
  const refText = ref.solution ?? (Object.keys(ref).length ? JSON.stringify(ref) : null);
  const list = h("ol", { class: "completions", "aria-label": `Completions for prompt ${r.prompt_id}` });
  card.append(
    media(r),
    h("div", { class: "rollout-body" },
      h("h3", {}, "Prompt ", h("span", { class: "mono" }, String(r.prompt_id))),
      h("p", { class: "question" }, r.prompt || ""),
      refText ? h("p", { class: "reference" }, h("span", { class: "sub" }, "Reference: "), h("code", {}, String(refText))) : null,
      list));
  (r.completions || []).forEach((c, i) => list.appendChild(completion(c, i, card)));
  return card;
}

/** sel = {step: null|number}: the step the user chose (null follows the newest). */
export function renderRollouts(box, rollouts, sel) {
  if (!rollouts.length) {
    replace(box, h("p", { class: "sub" }, "No rollouts sampled yet; they appear as training steps complete."));
    return;
  }
  const steps = [...new Set(rollouts.map((r) => r.step))].sort((a, b) => b - a);
  const step = sel.step !== null && steps.includes(sel.step) ? sel.step : steps[0];
  const select = h("select", { id: "rollout-step", "aria-label": "Training step" },
    steps.map((st, i) => h("option", { value: st, selected: st === step }, `step ${st}${i === 0 ? " (latest)" : ""}`)));
  const cards = h("div", { class: "rollout-cards" });
  const show = (st) => replace(cards, rollouts.filter((r) => r.step === st).map(rolloutCard));
  select.addEventListener("change", () => {
    const v = Number(select.value);
    sel.step = v === steps[0] ? null : v;
    show(v);
  });
  replace(box,
    h("div", { class: "rollout-controls" }, h("label", { for: "rollout-step" }, "Step "), select,
      h("span", { class: "sub" }, ` ${steps.length} recent step${steps.length === 1 ? "" : "s"}; hover or focus a completion to highlight its boxes`)),
    cards);
  show(step);
}

// Files page: uploaded files, their status and validation report; upload form.
import { ApiError, request } from "./api.js";
import { badge, fmtAgo, fmtBytes, fmtTime, h, replace, td } from "./dom.js";

function report(v) {
  const stats = h("dl", { class: "kv report-stats" },
    h("dt", {}, "Format"), h("dd", {}, v.format || "—"),
    h("dt", {}, "Rows read"), h("dd", {}, String(v.rows_read)),
    h("dt", {}, "Rows valid"), h("dd", {}, String(v.rows_valid)),
    h("dt", {}, "Images"), h("dd", {}, String(v.image_count)),
    h("dt", {}, "Reference fields"), h("dd", { class: "mono" }, (v.reference_fields || []).join(", ") || "—"),
    v.status_details ? [h("dt", {}, "Details"), h("dd", {}, v.status_details)] : null);
  const problems = v.problems || [];
  const more = v.problem_count > problems.length ? h("p", { class: "sub" }, `Showing ${problems.length} of ${v.problem_count} problems.`) : null;
  return h("div", { class: "report" }, stats,
    problems.length
      ? [h("h3", {}, `Problems (${v.problem_count || problems.length})`),
        h("table", { class: "problems responsive" },
          h("caption", { class: "visually-hidden" }, "Validation problems"),
          h("thead", {}, h("tr", {}, ...["Line", "Field", "Code", "Message"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, problems.map((p) => h("tr", { class: "problem" },
            td({ "data-label": "Line" }, p.line ?? "—"),
            td({ "data-label": "Field", class: "mono" }, p.field ?? "—"),
            td({ "data-label": "Code", class: "mono" }, p.code ?? ""),
            td({ "data-label": "Message" }, p.message ?? ""))))),
        more]
      : h("p", { class: "ok-text" }, v.status === "uploaded" ? "Validation is still running…" : "✓ No problems found."));
}

export function mountFiles(root, openId, ctx) {
  document.title = "Files · vrft";
  const open = new Set(openId ? [openId] : []);
  const tbody = h("tbody");
  const empty = h("p", { class: "empty", hidden: true }, "No files uploaded yet.");
  const fileInput = h("input", { type: "file", id: "upload-file", name: "file", accept: ".jsonl,.zip,.tar,.gz,.tgz,.parquet", required: true });
  const uploadStatus = h("p", { class: "sub", role: "status", "aria-live": "polite" });
  const uploadReport = h("div", { class: "upload-report", id: "upload-report" });
  const form = h("form", { class: "upload", "aria-label": "Upload a training file" },
    h("label", { for: "upload-file" }, "Upload a dataset (JSONL, archive or Parquet)"), fileInput,
    h("button", { type: "submit", class: "primary" }, "Upload"), uploadStatus, uploadReport);
  const table = h("table", { class: "files-table responsive" },
    h("caption", { class: "visually-hidden" }, "Uploaded files, newest first"),
    h("thead", {}, h("tr", {}, ...["File", "Status", "Format", "Rows", "Size", "Created", "Report"].map((t) => h("th", { scope: "col" }, t)))),
    tbody);
  replace(root, h("section", { class: "page", "aria-labelledby": "files-title" },
    h("div", { class: "page-head" }, h("h1", { id: "files-title" }, "Files")),
    h("div", { class: "card" }, form),
    h("div", { class: "card table-card" }, table, empty)));

  const reports = new Map();
  let files = [];

  async function loadReport(id) {
    try {
      const { data } = await request(`/v1/files/${encodeURIComponent(id)}/validation`);
      reports.set(id, data);
    } catch (err) {
      reports.set(id, { error: err instanceof ApiError ? err.describe() : String(err) });
    }
  }

  function render() {
    replace(tbody, files.flatMap((f) => {
      const isOpen = open.has(f.id);
      const detailId = `report-${f.id}`;
      const btn = h("button", { type: "button", class: "link-button", "aria-expanded": String(isOpen), "aria-controls": detailId,
        "data-report-for": f.id,
        onclick: async () => {
          if (open.has(f.id)) open.delete(f.id);
          else { open.add(f.id); if (!reports.has(f.id)) await loadReport(f.id); }
          render();
        } }, isOpen ? "Hide report" : "Show report");
      const row = h("tr", { "data-file-id": f.id, "data-status": f.status },
        td({ "data-label": "File" }, h("span", { class: "filename" }, f.filename), h("div", { class: "sub mono" }, f.id)),
        td({ "data-label": "Status" }, badge(f.status), f.status === "error" && f.status_details ? h("div", { class: "sub" }, f.status_details) : null),
        td({ "data-label": "Format" }, f.format || "—"),
        td({ "data-label": "Rows", class: "num" }, f.rows ?? "—"),
        td({ "data-label": "Size", class: "num" }, fmtBytes(f.bytes)),
        td({ "data-label": "Created" }, h("span", { title: fmtTime(f.created_at) }, fmtAgo(f.created_at))),
        td({ "data-label": "Report" }, btn));
      if (!isOpen) return [row];
      const rep = reports.get(f.id);
      const content = !rep ? h("p", { class: "sub" }, "Loading…")
        : rep.error ? h("p", { class: "form-error" }, rep.error) : report(rep);
      return [row, h("tr", { class: "report-row", id: detailId }, h("td", { colspan: 7 }, content))];
    }));
    empty.hidden = files.length > 0;
    table.hidden = files.length === 0;
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const file = fileInput.files[0];
    if (!file) { uploadStatus.textContent = "Choose a file first."; return; }
    const fd = new FormData();
    fd.append("purpose", "fine-tune");
    fd.append("file", file, file.name);
    uploadStatus.textContent = `Uploading ${file.name}…`;
    replace(uploadReport);
    try {
      const { data } = await request("/v1/files", { method: "POST", form: fd });
      uploadStatus.textContent = `Uploaded ${data.filename} as ${data.id} (${data.status}).`;
      form.reset();
      open.add(data.id);
      poller.now();
    } catch (err) {
      uploadStatus.textContent = `Upload failed: ${err instanceof ApiError ? err.describe() : err}`;
      const v = err instanceof ApiError && err.extra && err.extra.validation;
      if (v) {
        replace(uploadReport, h("h3", {}, `Validation report for ${file.name} (not stored)`),
          report({ status: "error", ...v, problems: v.problems || [], problem_count: v.problem_count ?? (v.problems || []).length }));
      }
    }
  });

  let lastSig = "";
  const poller = ctx.startPoller(async () => {
    const { data } = await request("/v1/files?limit=100");
    files = data.data;
    const pending = files.some((f) => f.status === "uploaded");
    // refresh open reports (cheap) so a background validation shows up
    await Promise.all([...open].filter((id) => files.some((f) => f.id === id) &&
      (!reports.has(id) || reports.get(id).status !== files.find((f) => f.id === id).status)).map(loadReport));
    const sig = JSON.stringify([files, [...open], [...reports.entries()]]);
    if (sig !== lastSig) { lastSig = sig; render(); }
    return pending ? null : 5000;
  });
}

// vrft dashboard: sign-in, hash router, polling, shared UI (toast, confirm dialog).
import { ApiError, clearKey, getKey, onUnauthorized, request, setKey } from "./api.js";
import { replace } from "./dom.js";
import { mountJobs } from "./jobs.js";
import { mountJob } from "./job.js";
import { mountFiles } from "./files.js";
import { mountCreate } from "./create.js";
import { mountPlayground } from "./playground.js";
import { mountCompare } from "./compare.js";

const $ = (sel) => document.querySelector(sel);
const view = $("#view");
const FALLBACK_MS = 2000;
const HIDDEN_FACTOR = 5;
const HIDDEN_MIN_MS = 10000;

let current = { pollers: [], cleanups: [] };

/** Poll `fn` (returns the server's poll hint in ms, null for the fallback, or "stop"). */
export function startPoller(fn, { fallbackMs = FALLBACK_MS } = {}) {
  let stopped = false, running = false, again = false, timer = null;
  const schedule = (hint) => {
    if (stopped) return;
    let delay = Math.max(200, hint ?? fallbackMs);
    if (document.hidden) delay = Math.max(delay * HIDDEN_FACTOR, HIDDEN_MIN_MS);
    timer = setTimeout(tick, delay);
  };
  async function tick() {
    clearTimeout(timer);
    timer = null;
    if (stopped) return;
    if (running) { again = true; return; }
    running = true;
    let hint = null;
    try {
      hint = await fn();
    } catch (err) {
      if (err && err.name === "AbortError") return;
      if (err instanceof ApiError && err.status === 401) { stopped = true; return; }
      reportError(err);
      hint = Math.max(FALLBACK_MS * 2, 5000);
    } finally {
      running = false;
    }
    if (hint === "stop") { stopped = true; return; }
    if (again) { again = false; tick(); return; }
    schedule(hint);
  }
  const onVisible = () => { if (!document.hidden && !stopped && timer !== null) tick(); };
  document.addEventListener("visibilitychange", onVisible);
  const poller = {
    now: () => { stopped = false; tick(); },
    stop: () => { stopped = true; clearTimeout(timer); document.removeEventListener("visibilitychange", onVisible); },
  };
  current.pollers.push(poller);
  tick();
  return poller;
}

function reportError(err) {
  const msg = err instanceof ApiError ? err.describe() : String(err && err.message || err);
  toast(`Refresh failed: ${msg}`, "error");
}

let toastTimer = null;
export function toast(message, kind = "info") {
  const el = $("#toast");
  el.textContent = message;
  el.dataset.kind = kind;
  el.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove("show"), kind === "error" ? 8000 : 4000);
}

/** A modal confirmation (native <dialog>); resolves true when confirmed. */
export function confirmDialog({ title, body, confirmLabel, cancelLabel = "Keep it", danger = true }) {
  const dlg = $("#confirm");
  $("#confirm-title").textContent = title;
  $("#confirm-body").textContent = body;
  const yes = $("#confirm-yes");
  yes.textContent = confirmLabel;
  yes.className = danger ? "danger" : "primary";
  $("#confirm-no").textContent = cancelLabel;
  dlg.returnValue = "";
  return new Promise((resolve) => {
    dlg.addEventListener("close", () => resolve(dlg.returnValue === "ok"), { once: true });
    dlg.showModal();
    $("#confirm-no").focus();
  });
}

export function onCleanup(fn) {
  current.cleanups.push(fn);
}

function teardown() {
  current.pollers.forEach((p) => p.stop());
  current.cleanups.forEach((fn) => { try { fn(); } catch (_) { /* ignore */ } });
  current = { pollers: [], cleanups: [] };
}

function showSignin(message) {
  teardown();
  replace(view);
  $("#nav").hidden = true;
  $("#signin").hidden = false;
  $("#signin-error").textContent = message || "";
  document.title = "Sign in · vrft";
  $("#api-key").focus();
}

function route() {
  if (!getKey()) { showSignin(); return; }
  $("#signin").hidden = true;
  $("#nav").hidden = false;
  teardown();
  const [hash, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const parts = hash.split("/").filter(Boolean).map(decodeURIComponent);
  let section = parts[0] || "jobs";
  document.querySelectorAll("[data-nav]").forEach((a) => {
    if (a.dataset.nav === (section === "compare" ? "jobs" : section)) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
  replace(view);
  const ctx = { startPoller, toast, confirmDialog, onCleanup };
  if (section === "jobs" && parts[1]) mountJob(view, parts[1], ctx);
  else if (section === "files") mountFiles(view, parts[1] || null, ctx);
  else if (section === "create") mountCreate(view, ctx);
  else if (section === "playground") mountPlayground(view, parts[1] || null, ctx);
  else if (section === "compare") mountCompare(view, new URLSearchParams(query), ctx);
  else {
    if (section !== "jobs") history.replaceState(null, "", "#/jobs");
    mountJobs(view, ctx);
  }
}

$("#signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const input = $("#api-key");
  const key = input.value.trim();
  const errEl = $("#signin-error");
  if (!key) { errEl.textContent = "Enter an API key to sign in."; input.focus(); return; }
  errEl.textContent = "Checking key…";
  const button = ev.submitter || $("#signin-form button");
  button.disabled = true;
  try {
    await request("/v1/fine_tuning/jobs?limit=1", { key });
    setKey(key);
    input.value = "";
    errEl.textContent = "";
    route();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      errEl.textContent = `That API key was not accepted (${err.status} ${err.code})`;
    } else if (err instanceof ApiError) {
      errEl.textContent = `Could not sign in: ${err.describe()}`;
    } else {
      errEl.textContent = `Could not sign in: ${err}`;
    }
    input.setAttribute("aria-invalid", "true");
    input.select();
  } finally {
    button.disabled = false;
  }
});

$("#api-key").addEventListener("input", (ev) => ev.target.removeAttribute("aria-invalid"));

$("#signout").addEventListener("click", () => {
  clearKey();
  showSignin("Signed out.");
});

onUnauthorized((err) => {
  clearKey();
  showSignin(`Your API key is no longer accepted (${err.status} ${err.code}); sign in again.`);
});

window.addEventListener("hashchange", route);
route();

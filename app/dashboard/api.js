// API access: the key lives in sessionStorage and is sent as a Bearer token.
const KEY_NAME = "vrft.apiKey";

export class ApiError extends Error {
  constructor(status, code, message, param) {
    super(message);
    this.status = status;
    this.code = code;
    this.param = param;
  }
  describe() {
    return `${this.message} (${this.status} ${this.code})`;
  }
}

export function getKey() {
  return sessionStorage.getItem(KEY_NAME);
}
export function setKey(key) {
  sessionStorage.setItem(KEY_NAME, key);
}
export function clearKey() {
  sessionStorage.removeItem(KEY_NAME);
}

const unauthorizedHandlers = [];
export function onUnauthorized(fn) {
  unauthorizedHandlers.push(fn);
}

function authHeaders(key) {
  return { Authorization: `Bearer ${key ?? getKey() ?? ""}` };
}

async function toError(resp) {
  let code = "http_error";
  let message = resp.statusText || `HTTP ${resp.status}`;
  let param = null;
  let extra = {};
  try {
    const body = await resp.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
      param = body.error.param ?? null;
      extra = body.error;
    }
  } catch (_) { /* not JSON */ }
  const err = new ApiError(resp.status, code, message, param);
  err.extra = extra;
  return err;
}

/**
 * request(path, {method, body, key, signal, form}) → {data, pollAfterMs, response}
 * Throws ApiError for HTTP errors; a 401 also notifies onUnauthorized handlers (unless a key is given).
 */
export async function request(path, opts = {}) {
  const headers = authHeaders(opts.key);
  let body;
  if (opts.form) {
    body = opts.form;
  } else if (opts.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(opts.body);
  }
  let resp;
  try {
    resp = await fetch(path, { method: opts.method || "GET", headers, body, signal: opts.signal, cache: "no-store" });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "network_error", "The server could not be reached");
  }
  if (!resp.ok) {
    const err = await toError(resp);
    if (resp.status === 401 && !opts.key) unauthorizedHandlers.forEach((fn) => fn(err));
    throw err;
  }
  const hint = parseInt(resp.headers.get("X-Poll-After-Ms") || "", 10);
  const data = resp.status === 204 ? null : await resp.json();
  return { data, pollAfterMs: Number.isFinite(hint) && hint > 0 ? hint : null, response: resp };
}

/** GET an authenticated URL as text, reading at most `maxBytes` (a preview of a large file). */
export async function fetchText(path, { signal, maxBytes = 4 * 1024 * 1024 } = {}) {
  let resp;
  try {
    resp = await fetch(path, { headers: authHeaders(), cache: "no-store", signal });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "network_error", "The server could not be reached");
  }
  if (!resp.ok) throw await toError(resp);
  const reader = resp.body.getReader();
  const chunks = [];
  let size = 0, truncated = false;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.length;
    if (size >= maxBytes) { truncated = true; reader.cancel(); break; }
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) { all.set(c, at); at += c.length; }
  return { text: new TextDecoder().decode(all), truncated };
}

/** Download an authenticated URL (follows the server's redirect to storage) as a file. */
export async function download(path, filename) {
  let resp;
  try {
    resp = await fetch(path, { headers: authHeaders(), cache: "no-store" });
  } catch (_) {
    throw new ApiError(0, "network_error", "The download could not be fetched (network or storage CORS)");
  }
  if (!resp.ok) throw await toError(resp);
  const blob = await resp.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  a.hidden = true;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  return blob.size;
}

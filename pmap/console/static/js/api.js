// The console's one way to the JSON API: the session cookie goes with every request (same origin), the
// session's CSRF token with every state-changing one; an ended session sends the reader to sign in again.

const CSRF = document.querySelector('meta[name="csrf-token"]')?.getAttribute("content") || "";

/** An API error: status, and the one JSON error body ({error: {code, message, fields, ...}}). */
export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

function url(path, query) {
  const u = new URL(`/api/v1${path}`, window.location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) value.forEach((v) => u.searchParams.append(key, v));
    else u.searchParams.set(key, value);
  }
  return u;
}

/** Call the API: api("GET", "/integrations", {query}) or api("POST", "/x", {json}) or {form: FormData}. */
export async function api(method, path, {query, json, form, signal} = {}) {
  const headers = {Accept: "application/json"};
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = CSRF;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  }
  const response = await fetch(url(path, query), {method, headers, body, signal, credentials: "same-origin",
    cache: "no-store", redirect: "error"});
  if (response.status === 401) {
    window.location.assign("/sign-in");
    throw new ApiError(401, null);
  }
  if (response.status === 204) return null;
  let data = null;
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) data = await response.json();
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** Upload with progress (fetch has no upload progress): onProgress(fraction) while the body goes out. */
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url(path).toString());
    xhr.setRequestHeader("X-CSRF-Token", CSRF);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.responseType = "json";
    xhr.upload.onprogress = (e) => { if (e.lengthComputable && onProgress) onProgress(e.loaded / e.total); };
    xhr.onload = () => {
      if (xhr.status === 401) { window.location.assign("/sign-in"); return; }
      if (xhr.status >= 200 && xhr.status < 300) resolve(xhr.response);
      else reject(new ApiError(xhr.status, xhr.response));
    };
    xhr.onerror = () => reject(new ApiError(0, null));
    xhr.send(form);
  });
}

/** Poll fn() every `every` ms (never faster than 2 s) until it returns true or the page is left. */
export function poll(fn, every = 2000) {
  const interval = Math.max(2000, every);
  let stopped = false;
  let timer = null;
  const tick = async () => {
    if (stopped) return;
    let done = false;
    try { done = await fn(); } catch (e) { done = false; }
    if (!done && !stopped) timer = setTimeout(tick, interval);
  };
  timer = setTimeout(tick, interval);
  const stop = () => { stopped = true; clearTimeout(timer); };
  window.addEventListener("pagehide", stop, {once: true});
  return stop;
}

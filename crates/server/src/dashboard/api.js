// Talking to the daemon: JSON requests, server-sent event streams read with fetch
// (so the token can go along), and asking for the token when the daemon wants one.

import { $ } from "./dom.js";

const TOKEN_KEY = "cutover.token";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function headers(extra) {
  const out = Object.assign({ Accept: "application/json" }, extra);
  const t = token();
  if (t) out.Authorization = `Bearer ${t}`;
  return out;
}

export async function failure(res) {
  let body = {};
  try {
    body = await res.json();
  } catch {
    // Not JSON: the status says enough.
  }
  return new ApiError(res.status, body.code || "http_" + res.status, body.error || `the daemon answered ${res.status}`);
}

// A request; a 401 asks for the token and tries again with it.
export async function request(path, options = {}) {
  for (;;) {
    const res = await fetch(path, Object.assign({}, options, { headers: headers(options.headers) }));
    if (res.status !== 401) return res;
    const err = await failure(res);
    forgetToken();
    if (!(await askToken(err.message))) throw err;
  }
}

export async function getJson(path) {
  const res = await request(path);
  if (!res.ok) throw await failure(res);
  return res.json();
}

// Reads a server-sent event stream, calling `onEvent` with each event's id, type
// and data, until the server ends it.
export async function readEventStream(path, lastId, signal, onEvent) {
  const extra = { Accept: "text/event-stream" };
  if (lastId) extra["Last-Event-ID"] = String(lastId);
  const res = await request(path, { headers: extra, signal });
  if (!res.ok) throw await failure(res);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = { id: null, type: "message", data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, end).replace(/\r$/, "");
      buffer = buffer.slice(end + 1);
      if (line === "") {
        if (event.data.length) onEvent({ id: event.id, type: event.type, data: event.data.join("\n") });
        event = { id: event.id, type: "message", data: [] };
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "data") event.data.push(text);
      else if (field === "id") event.id = text;
      else if (field === "event") event.type = text;
    }
  }
}


let tokenPrompt = null;

// Asks for the token; resolves true once one is saved, false if the person cancels.
export function askToken(problem) {
  const dialog = $("token-dialog");
  const error = $("token-error");
  error.hidden = !problem;
  error.textContent = problem ? `The daemon refused the request: ${problem}` : "";
  if (tokenPrompt) return tokenPrompt;
  tokenPrompt = new Promise((resolve) => {
    const input = $("token-input");
    input.value = "";
    const done = (saved) => {
      tokenPrompt = null;
      $("token-save").removeEventListener("click", save);
      $("token-cancel").removeEventListener("click", cancel);
      input.removeEventListener("keydown", enter);
      dialog.removeEventListener("cancel", cancel);
      if (dialog.open) dialog.close();
      renderTokenButton();
      resolve(saved);
    };
    const save = () => {
      const value = input.value.trim();
      if (!value) {
        error.hidden = false;
        error.textContent = "Paste the token first.";
        return;
      }
      sessionStorage.setItem(TOKEN_KEY, value);
      done(true);
    };
    const cancel = (e) => {
      if (e) e.preventDefault();
      done(false);
    };
    const enter = (e) => {
      if (e.key === "Enter") save();
    };
    $("token-save").addEventListener("click", save);
    $("token-cancel").addEventListener("click", cancel);
    input.addEventListener("keydown", enter);
    dialog.addEventListener("cancel", cancel);
    dialog.showModal();
    input.focus();
  });
  return tokenPrompt;
}

export function renderTokenButton() {
  const button = $("token-button");
  const has = !!token();
  button.textContent = has ? "Token set" : "Enter token";
  button.classList.toggle("unlocked", has);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  renderTokenButton();
}

// cutover's dashboard: a client of the daemon's /api/v1, like the CLI. It polls the
// status, follows one run's event stream (server-sent events, read with fetch so
// the token can go along when reads need it), and draws with DOM nodes and
// textContent only: no text from the API is ever parsed as HTML.

import { ApiError, askToken, failure, forgetToken, getJson, readEventStream, renderTokenButton, request } from "./api.js";
import { renderCharts } from "./chart.js";
import { $, clear, h } from "./dom.js";
import { KIND_WORDS, OUTCOME_WORDS, STAGE_NAMES, clock, dateTime, duration, millis, number, pct } from "./format.js";
import { markdown } from "./markdown.js";

const STATUS_EVERY_MS = 2000;
const RECONNECT_MAX_MS = 10000;

const state = {
  status: null,
  // The app: its live version and the ones promoted before it.
  app: null,
  runs: [],
  // The run named in the address (`#run=ID`), or null to follow the live one.
  pinned: null,
  // The run on screen: its record, its events and the chart points made of them.
  run: null,
  statusTimer: null,
  statusSoon: null,
  // What the history table shows now.
  historyKey: null,
};

function pill(cls, text) {
  return h("span", { class: `pill ${cls}`, text });
}

function outcomePill(outcome) {
  return outcome ? pill(outcome, OUTCOME_WORDS[outcome] || outcome) : pill("running", "in progress");
}

// Asks whether to go ahead; resolves true only on the confirming button.
function confirmAction(title, text, verb, danger) {
  const dialog = $("confirm-dialog");
  const ok = $("confirm-ok");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  ok.textContent = verb;
  ok.className = danger ? "danger" : "primary";
  return new Promise((resolve) => {
    const done = (yes) => {
      ok.removeEventListener("click", yes_);
      $("confirm-cancel").removeEventListener("click", no);
      dialog.removeEventListener("cancel", no);
      if (dialog.open) dialog.close();
      resolve(yes);
    };
    const yes_ = () => done(true);
    const no = (e) => {
      if (e) e.preventDefault();
      done(false);
    };
    ok.addEventListener("click", yes_);
    $("confirm-cancel").addEventListener("click", no);
    dialog.addEventListener("cancel", no);
    dialog.showModal();
    $("confirm-cancel").focus();
  });
}

let noticeTimer = null;

function notice(kind, text) {
  const el = $("notice");
  el.className = `notice ${kind}`;
  el.textContent = text;
  el.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => (el.hidden = true), 8000);
}

function previousVersion() {
  return state.app && state.app.previous.length ? state.app.previous[0] : null;
}

function actions() {
  const active = state.status && state.status.active_run;
  const version = active ? active.version : "";
  return {
    promote: {
      path: "/api/v1/promote",
      title: `Promote ${version}?`,
      text: `${version} skips the remaining steps and takes all traffic. Analysis stops judging this run.`,
      verb: "Promote",
    },
    abort: {
      path: "/api/v1/abort",
      title: `Abort the rollout of ${version}?`,
      text: "All traffic goes back to the stable version at once, and the new version is stopped.",
      verb: "Abort",
      danger: true,
    },
    rollback: {
      path: "/api/v1/rollback",
      title: "Roll back?",
      text: `${previousVersion() || "The version promoted before it"} takes all traffic at once, without analysis` +
        (state.status && state.status.stable ? `; ${state.status.stable} is stopped.` : "."),
      verb: "Roll back",
      danger: true,
    },
  };
}

async function act(name) {
  const action = actions()[name];
  if (!(await confirmAction(action.title, action.text, action.verb, action.danger))) return;
  try {
    const res = await request(action.path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{}",
    });
    if (!res.ok) throw await failure(res);
    const answer = await res.json();
    notice("good", `${action.verb} requested for run ${answer.run_id}.`);
    refreshStatus();
  } catch (err) {
    notice("bad", `${action.verb}: ${err.message}`);
  }
}

async function refreshStatus() {
  clearTimeout(state.statusTimer);
  try {
    const [status, apps, runs] = await Promise.all([
      getJson("/api/v1/status"),
      getJson("/api/v1/apps"),
      getJson("/api/v1/runs?limit=50"),
    ]);
    state.status = status;
    state.app = apps.find((a) => a.app === status.app) || null;
    state.runs = runs;
    setLive("live", "live");
    renderServing();
    renderHistory();
    pickRun();
    renderControls();
  } catch (err) {
    setLive("down", err instanceof ApiError ? err.message : "daemon unreachable");
  }
  state.statusTimer = setTimeout(refreshStatus, STATUS_EVERY_MS);
}

// Soon, once, however many events ask for it.
function refreshStatusSoon() {
  if (state.statusSoon) return;
  state.statusSoon = setTimeout(() => {
    state.statusSoon = null;
    refreshStatus();
  }, 150);
}

function setLive(kind, text) {
  const el = $("live");
  el.dataset.state = kind;
  el.textContent = text;
}

function renderServing() {
  const status = state.status;
  $("app-name").textContent = status.app;
  document.title = `${status.app} · cutover`;
  $("proxy-address").textContent = `proxy http://${status.proxy}`;
  const versions = clear($("versions"));
  const live = state.app ? state.app.live : status.stable;
  if (live) {
    const promotedRun = state.runs.find((r) => r.version === live && r.outcome === "promoted");
    versions.append(h("span", { class: "live-version" }, live, h("small", { text: "live" })));
    if (promotedRun && promotedRun.finished_at_ms) {
      versions.append(h("span", { class: "muted", text: `since ${dateTime(promotedRun.finished_at_ms)}` }));
    }
  } else {
    versions.append(h("span", { class: "muted", text: "Nothing serves yet: deploy a first version with `cutover deploy v1`." }));
  }
  const before = state.app ? state.app.previous : [];
  if (before.length) {
    const list = before.flatMap((v, i) => [i ? " · " : "", h("span", { class: "mono", text: v })]);
    versions.append(h("span", { class: "previous" }, "before: ", list));
  }

  const traffic = new Map(status.traffic.map((t) => [t.version, t]));
  const backends = clear($("backends"));
  for (const b of status.backends) {
    const t = traffic.get(b.version);
    backends.append(
      h("div", { class: "backend" },
        h("div", { class: "backend-top" },
          h("span", {}, h("span", { class: `role ${b.role}`, text: b.role }),
            h("span", { class: "version", text: b.release === b.version ? b.version : `${b.version} (${b.release})` })),
          h("span", { class: "weight", text: pct(b.weight_bp) })),
        h("span", { class: "detail", text: `${b.ready_instances}/${b.instances} instance${b.instances === 1 ? "" : "s"} ready` +
          (t ? ` · ${t.requests} requests, ${t.errors_5xx} 5xx` : "") }),
        b.first_problem ? h("span", { class: "problem", text: b.first_problem }) : null,
        b.describe.length ? h("span", { class: "instances mono" }, b.describe.map((d) => h("span", { text: d }))) : null));
  }
}

// Redrawn only when something in it changed, so a row with focus keeps it.
function renderHistory() {
  const key = JSON.stringify([state.runs, state.run && state.run.id]);
  if (key === state.historyKey) return;
  state.historyKey = key;
  const body = clear($("history-rows"));
  if (!state.runs.length) {
    body.append(h("tr", {}, h("td", { colspan: 7, class: "muted", text: "No runs yet." })));
    return;
  }
  for (const r of state.runs) {
    const took = r.finished_at_ms ? duration(r.finished_at_ms - r.started_at_ms) : "running";
    const open = () => pin(r.id);
    const row = h("tr", { "data-run": r.id, class: state.run && state.run.id === r.id ? "selected" : null, tabindex: 0,
      onclick: open, onkeydown: (e) => e.key === "Enter" && open() },
      h("td", { class: "mono", text: dateTime(r.started_at_ms) }),
      h("td", { text: KIND_WORDS[r.kind] || r.kind }),
      h("td", { class: "mono", text: r.version }),
      h("td", { class: "mono", text: r.stable || "—" }),
      h("td", {}, outcomePill(r.outcome)),
      h("td", { class: "num", text: took }),
      h("td", { class: "why", text: r.reason || "" }));
    body.append(row);
  }
}

function renderControls() {
  const active = state.status && state.status.active_run;
  const shown = state.run && active && state.run.id === active.run_id;
  const stage = active ? active.phase.stage : null;
  const steerable = shown && !["promoting", "rolling_back", "finished"].includes(stage);
  $("promote").disabled = !steerable;
  $("abort").disabled = !steerable;
  const switchBack = active && active.kind === "blue_green" && stage === "post_promotion";
  $("rollback").disabled = !(state.status && state.status.stable) || (active && !switchBack);
}

function pin(id) {
  location.hash = id ? `run=${encodeURIComponent(id)}` : "";
}

function readHash() {
  const m = /^#run=(.+)$/.exec(location.hash);
  state.pinned = m ? decodeURIComponent(m[1]) : null;
  $("run-back").hidden = !state.pinned;
  pickRun();
}

function pickRun() {
  const active = state.status && state.status.active_run;
  const id = state.pinned || (active && active.run_id) || (state.runs[0] && state.runs[0].id);
  if (id && (!state.run || state.run.id !== id)) show(id);
}

function newRun(id) {
  return {
    id,
    record: null,
    events: [],
    lastSeq: 0,
    final: null,
    points: [],
    // When the window being measured began: the last analysis or phase change.
    mark: null,
    listed: 0,
    abort: new AbortController(),
    receipts: null,
  };
}

async function show(id) {
  if (state.run) state.run.abort.abort();
  const run = newRun(id);
  state.run = run;
  clear($("events"));
  clear($("windows"));
  clear($("receipt-tabs"));
  clearReceiptBody();
  renderRun();
  try {
    const detail = await getJson(`/api/v1/runs/${encodeURIComponent(id)}`);
    if (state.run !== run) return;
    run.record = detail.run;
    for (const e of detail.events) addEvent(run, e);
    renderRun();
    renderHistory();
    if (run.final) {
      loadReceipts(run);
    } else {
      $("receipt-body").append(h("p", { class: "empty-note", text: "Receipts are written when the run ends." }));
      follow(run);
    }
  } catch (err) {
    if (state.run === run) notice("bad", `run ${id}: ${err.message}`);
  }
}

// Follows the run's events from the last one it has, reconnecting after a break
// (the daemon restarting) with Last-Event-ID, until the final event.
async function follow(run) {
  let wait = 500;
  while (!run.final && !run.abort.signal.aborted) {
    try {
      await readEventStream(`/api/v1/runs/${encodeURIComponent(run.id)}/events`, run.lastSeq, run.abort.signal, (message) => {
        const event = JSON.parse(message.data);
        if (state.run !== run) return;
        addEvent(run, event);
        scheduleRender();
        if (["phase", "traffic", "healthy", "unhealthy", "outcome"].includes(event.kind)) refreshStatusSoon();
        wait = 500;
      });
    } catch {
      if (run.abort.signal.aborted) return;
      setLive("down", "reconnecting");
    }
    if (run.final || run.abort.signal.aborted) break;
    await new Promise((resolve) => setTimeout(resolve, wait));
    wait = Math.min(wait * 2, RECONNECT_MAX_MS);
  }
  if (run.final && state.run === run) {
    refreshStatus();
    loadReceipts(run);
  }
}

// Every run's events, only to hear at once of a run other than the one on screen
// (a new one starting): the status is asked again, and the new run shown.
async function watchAllRuns() {
  let lastId = null;
  let wait = 500;
  for (;;) {
    try {
      await readEventStream("/api/v1/events", lastId, null, (message) => {
        lastId = message.id;
        const event = JSON.parse(message.data);
        if (!state.run || event.run_id !== state.run.id) refreshStatusSoon();
        wait = 500;
      });
    } catch {
      // The daemon went away or restarted; the status poll says so.
    }
    await new Promise((resolve) => setTimeout(resolve, wait));
    wait = Math.min(wait * 2, RECONNECT_MAX_MS);
  }
}

function addEvent(run, e) {
  if (e.seq <= run.lastSeq) return;
  run.lastSeq = e.seq;
  run.events.push(e);
  if (e.kind === "analysis" && e.report) run.points.push(pointOf(run, e));
  if (e.kind === "phase" || e.kind === "analysis") run.mark = e.at_ms;
  if (e.outcome) run.final = e;
}

// One analysis window as chart values. The request rate is the window's requests
// over the time since the window before it (or the step's start). A baseline carried
// over from an earlier window was not measured now, so none of its values is plotted.
function pointOf(run, e) {
  const { stable, canary, verdict } = e.report;
  const carried = e.carried_over || e.report.against === "carried_baseline";
  const seconds = run.mark == null ? null : Math.max((e.at_ms - run.mark) / 1000, 0.001);
  const perSecond = (sample) => (seconds == null ? null : sample.requests / seconds);
  const errorShare = (sample) => (sample.requests ? sample.errors / sample.requests : null);
  const p95 = (sample) => sample.p95 ?? null;
  const stableOrNull = (value) => (carried ? null : value(stable));
  return {
    at: e.at_ms,
    verdict,
    rate: { stable: stableOrNull(perSecond), canary: perSecond(canary) },
    errors: { stable: stableOrNull(errorShare), canary: errorShare(canary) },
    p95: { stable: stableOrNull(p95), canary: p95(canary) },
  };
}

let renderQueued = false;

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    renderRun();
  });
}

function renderRun() {
  const run = state.run;
  if (!run) return;
  const r = run.record;
  const first = run.events[0];
  const startedAt = r ? r.started_at_ms : first ? first.at_ms : null;
  const endedAt = run.final ? run.final.at_ms : null;
  $("run-kicker").textContent = r ? `${KIND_WORDS[r.kind] || r.kind}${state.pinned ? "" : run.final ? " · latest run" : " · live"}` : "";
  $("run-title").textContent = r ? (r.stable && r.stable !== r.version ? `${r.stable} → ${r.version}` : r.version) : "Loading…";
  const sub = clear($("run-sub"));
  if (r) {
    sub.append(outcomePill(run.final ? run.final.outcome : null), " ",
      `run ${r.id} · started ${dateTime(startedAt)} · ${duration((endedAt || Date.now()) - startedAt)}`);
  }
  // A first deploy and a rollback move all traffic at once and judge nothing.
  $("run").classList.toggle("unjudged", !!r && (r.kind === "initial" || r.kind === "rollback"));
  renderPipeline(run);
  renderSplit(run);
  renderCharts(run);
  renderLists(run);
  renderControls();
}

// The stages of a run, by its kind, each with what the events say of it.
function stagesOf(run) {
  const kind = run.record ? run.record.kind : null;
  const phases = run.events.filter((e) => e.kind === "phase");
  // The pipeline's stages before the rollout (schedule, window, approval), as
  // their own events say.
  const before = [];
  for (const e of run.events.filter((e) => e.kind === "stage" && e.stage !== "deploy")) {
    let st = before.find((b) => b.key === e.stage);
    if (!st) before.push((st = { key: e.stage, name: STAGE_NAMES[e.stage] || e.stage, pipeline: true }));
    if (e.status === "running" && st.enteredAt == null) st.enteredAt = e.at_ms;
    if (e.status !== "running") st.leftAt = e.at_ms;
    st.stageStatus = e.status;
    st.message = e.message;
  }
  const stages = [...before, { key: "starting", name: "Start" }];
  const counted = phases.map((e) => e.phase).find((p) => p.of);
  if (kind === "canary" || kind === "rolling") {
    const word = kind === "canary" ? "Step" : "Batch";
    const of = counted ? counted.of : 0;
    if (!of) stages.push({ key: "steps", name: `${word}s` });
    for (let i = 1; i <= of; i++) stages.push({ key: `${kind === "canary" ? "step" : "batch"}:${i}`, name: `${word} ${i}` });
  } else if (kind === "blue_green") {
    stages.push({ key: "preview", name: "Preview" });
    if (phases.some((e) => e.phase.stage === "awaiting_promotion")) stages.push({ key: "awaiting_promotion", name: "Awaiting promote" });
    stages.push({ key: "post_promotion", name: "Switched" });
  }
  stages.push({ key: "end", name: "Promote" });
  const keyOf = (p) => {
    switch (p.stage) {
      case "pending": case "starting": return "starting";
      case "scheduled": return "schedule";
      case "awaiting_approval": return "approval";
      case "step": return `step:${p.step}`;
      case "batch": return `batch:${p.batch}`;
      case "preview": case "awaiting_promotion": case "post_promotion": return p.stage;
      default: return "end";
    }
  };
  // When each stage was entered, and left.
  for (let i = 0; i < phases.length; i++) {
    const stage = stages.find((st) => st.key === keyOf(phases[i].phase));
    if (!stage) continue;
    if (stage.enteredAt == null) stage.enteredAt = phases[i].at_ms;
    stage.phase = phases[i].phase;
    stage.message = phases[i].message;
    stage.leftAt = phases[i + 1] ? phases[i + 1].at_ms : null;
  }
  const current = phases.length ? stages.findIndex((st) => st.key === keyOf(phases[phases.length - 1].phase)) : 0;
  // Stages before the current one were passed, or skipped (a promote skips the
  // remaining steps).
  const passed = (st) => (st.enteredAt != null ? "done" : "skipped");
  stages.forEach((st, i) => (st.status = i < current ? passed(st) : i === current ? "current" : "upcoming"));
  for (const st of stages.filter((st) => st.pipeline)) {
    st.status = { running: "current", passed: "done", failed: "done", skipped: "skipped" }[st.stageStatus] || st.status;
    if (st.stageStatus === "failed") st.tone = "bad";
  }
  const end = stages[stages.length - 1];
  const last = phases.length ? phases[phases.length - 1].phase.stage : null;
  if (run.final) {
    end.status = "done";
    end.name = (OUTCOME_WORDS[run.final.outcome] || run.final.outcome).replace(/^./, (c) => c.toUpperCase());
    end.tone = run.final.outcome === "promoted" ? "good" : ["aborted", "blocked"].includes(run.final.outcome) ? "warn" : "bad";
    end.enteredAt = end.enteredAt ?? run.final.at_ms;
    end.leftAt = run.final.at_ms;
    if (end.tone !== "good") {
      // Stages it never reached stay upcoming; the one it left from is where it stopped.
      stages.forEach((st) => st !== end && st.status === "current" && (st.status = "done"));
    }
  } else if (last === "rolling_back") {
    end.name = "Rolling back";
    end.tone = "bad";
  } else if (last === "promoting") {
    end.name = "Promoting";
  }
  return stages;
}

function renderPipeline(run) {
  const list = clear($("pipeline"));
  const stages = stagesOf(run);
  const now = Date.now();
  for (const st of stages) {
    let detail = "";
    if (st.phase && st.phase.weight_bp != null) detail = pct(st.phase.weight_bp);
    if (st.enteredAt != null && st.key !== "end") {
      const spent = duration((st.leftAt ?? (run.final ? run.final.at_ms : now)) - st.enteredAt);
      detail = detail ? `${detail} · ${spent}` : spent;
    }
    if (st.key === "end" && run.final) detail = clock(run.final.at_ms);
    if (st.status === "skipped") detail = "skipped";
    const cls = ["stage", st.status, st.tone].filter(Boolean).join(" ");
    list.append(h("li", { class: cls, title: st.message || null, "aria-current": st.status === "current" ? "step" : null },
      h("span", { class: "stage-name", text: st.name }),
      h("span", { class: "stage-detail", text: detail || "\u00a0" })));
  }
  const lastPhase = [...run.events].reverse().find((e) => e.kind === "phase");
  $("phase-message").textContent = run.final ? run.final.message : lastPhase ? lastPhase.message : "";
}

function renderSplit(run) {
  const r = run.record;
  const withWeight = [...run.events].reverse().find((e) => e.weight_bp != null);
  const bp = withWeight ? withWeight.weight_bp : 0;
  const from = r && r.stable && r.stable !== r.version ? r.stable : "stable";
  const to = r ? r.version : "new version";
  $("split-fill").style.width = `${bp / 100}%`;
  $("split-stable").replaceChildren(h("strong", { text: pct(10000 - bp) }), " ", from);
  $("split-canary").replaceChildren(to, " ", h("strong", { text: pct(bp) }));
  $("legend-stable").textContent = `stable (${from})`;
  $("legend-canary").textContent = `canary (${to})`;
}

function renderLists(run) {
  const windows = $("windows");
  const events = $("events");
  const origin = run.events[0] ? run.events[0].at_ms : 0;
  for (const e of run.events.slice(run.listed)) {
    events.prepend(eventItem(e, origin));
    if (e.kind === "analysis" && e.report) windows.prepend(windowItem(e, origin));
  }
  run.listed = run.events.length;
  if (!events.children.length) events.append(h("li", { class: "empty-note", text: "No events yet." }));
  else events.querySelectorAll(".empty-note").forEach((n) => n.remove());
  const judged = run.points.length;
  if (!judged) {
    if (!windows.children.length) windows.append(h("li", { class: "empty-note", text: "No window judged yet." }));
  } else {
    windows.querySelectorAll(".empty-note").forEach((n) => n.remove());
  }
  const count = (v) => run.points.filter((p) => p.verdict === v).length;
  $("analysis-summary").textContent = judged
    ? `${judged} window${judged === 1 ? "" : "s"}: ${count("pass")} pass, ${count("fail")} fail, ${count("inconclusive")} inconclusive`
    : "";
}

function eventItem(e, origin) {
  const tone = e.outcome ? (e.outcome === "promoted" ? "good" : "bad") : ["rolling_back", "unhealthy", "start_failed"].includes(e.kind) ? "bad" : "";
  return h("li", { class: `event ${tone}`, "data-seq": e.seq },
    h("span", { class: "since", text: `+${duration(e.at_ms - origin)}` }),
    h("span", {}, h("span", { class: "kind", text: e.kind }), e.message,
      e.weight_bp != null ? h("span", { class: "muted", text: ` · ${pct(e.weight_bp)}` }) : null));
}

// A judged window: its verdict, both versions' samples, and every metric with
// whatever fields its result carries.
function windowItem(e, origin) {
  const { stable, canary, verdict, metrics } = e.report;
  const sample = (name, v) => [h("b", { text: name }), ` ${v.requests} req, ${v.errors} err, p50 ${millis(v.p50)}, p95 ${millis(v.p95)}, p99 ${millis(v.p99)}`];
  const item = h("li", { class: "window", "data-seq": e.seq },
    h("div", { class: "window-head" },
      pill(verdict, verdict),
      h("span", { class: "when", text: `${clock(e.at_ms)} · +${duration(e.at_ms - origin)} · step ${e.step + 1}` }),
      e.carried_over ? h("span", { class: "muted", text: "baseline carried from an earlier window" }) : null),
    h("div", { class: "samples" }, sample("canary", canary), h("br"), sample("stable", stable)));
  if (metrics && metrics.length) item.append(metricTable(metrics));
  return item;
}

function metricTable(metrics) {
  const columns = ["metric", "verdict"];
  for (const m of metrics) for (const key of Object.keys(m)) if (!columns.includes(key)) columns.push(key);
  const cell = (key, value) => {
    const label = key.replace(/_/g, " ");
    if (key === "verdict" && typeof value === "string") return h("td", { "data-label": label }, pill(value, value));
    if (value !== null && typeof value === "object") return h("td", { "data-label": label, class: "mono", text: JSON.stringify(value) });
    return h("td", { "data-label": label, text: typeof value === "boolean" ? (value ? "yes" : "no") : number(value) });
  };
  return h("div", { class: "table-wrap" },
    h("table", { class: "metrics" },
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { text: c.replace(/_/g, " ") })))),
      h("tbody", {}, metrics.map((m) => h("tr", {}, columns.map((c) => cell(c, m[c])))))));
}

// The run's receipts, once its daemon has written them (just after its final event).
async function loadReceipts(run, attempt = 1) {
  const tabs = clear($("receipt-tabs"));
  const body = clearReceiptBody();
  try {
    const listed = await getJson(`/api/v1/runs/${encodeURIComponent(run.id)}/receipts`);
    if (state.run !== run) return;
    const names = listed.map((file) => file.name);
    if (!names.length) {
      if (attempt < 5) {
        setTimeout(() => state.run === run && loadReceipts(run, attempt + 1), 500 * attempt);
        return;
      }
      body.append(h("p", { class: "empty-note", text: "This run has no receipts." }));
      return;
    }
    const first = names.includes("deployment-log.md") ? "deployment-log.md" : names[0];
    for (const name of names) {
      tabs.append(h("button", { type: "button", role: "tab", "aria-selected": name === first ? "true" : "false", "data-name": name,
        onclick: () => openReceipt(run, name, names), text: name }));
    }
    openReceipt(run, first, names);
  } catch (err) {
    body.append(h("p", { class: "empty-note", text: `Receipts could not be read: ${err.message}` }));
  }
}

// One receipt: Markdown rendered, a chart (`.svg`) as an image, anything else as text.
// `names` are all the run's receipts, the ones a Markdown image may show.
async function openReceipt(run, name, names) {
  for (const tab of $("receipt-tabs").children) tab.setAttribute("aria-selected", tab.dataset.name === name ? "true" : "false");
  const body = clearReceiptBody();
  if (isChart(name)) {
    body.append(receiptImage(run, name, name));
    return;
  }
  try {
    const res = await fetchReceipt(run, name, "text/markdown, text/plain, application/json");
    const text = await res.text();
    if (state.run !== run) return;
    const image = (target, alt) => (isChart(target) && names.includes(target) ? receiptImage(run, target, alt) : null);
    body.append(name.endsWith(".md") ? markdown(text, image) : h("pre", {}, h("code", { text })));
  } catch (err) {
    body.append(h("p", { class: "empty-note", text: `${name} could not be read: ${err.message}` }));
  }
}

const isChart = (name) => name.endsWith(".svg");

async function fetchReceipt(run, name, accept) {
  const res = await request(`/api/v1/runs/${encodeURIComponent(run.id)}/receipts/${encodeURIComponent(name)}`, {
    headers: { Accept: accept },
  });
  if (!res.ok) throw await failure(res);
  return res;
}

// The object URLs of the receipt images on screen, revoked when they are replaced.
let receiptUrls = [];

function clearReceiptBody() {
  for (const url of receiptUrls) URL.revokeObjectURL(url);
  receiptUrls = [];
  return clear($("receipt-body"));
}

// A chart receipt as an <img>: fetched with the token like the other receipts (the
// daemon serves it as text), shown from a blob: URL as SVG. An SVG in an <img> runs
// no script.
function receiptImage(run, name, alt) {
  const img = h("img", { class: "receipt-image", alt });
  fetchReceipt(run, name, "image/svg+xml, text/plain")
    .then((res) => res.blob())
    .then((blob) => {
      if (state.run !== run || !img.isConnected) return;
      const url = URL.createObjectURL(new Blob([blob], { type: "image/svg+xml" }));
      receiptUrls.push(url);
      img.src = url;
    })
    .catch((err) => {
      img.alt = `${alt} could not be read: ${err.message}`;
    });
  return img;
}

function start() {
  renderTokenButton();
  $("token-button").addEventListener("click", () => askToken());
  $("token-forget").addEventListener("click", () => {
    forgetToken();
    $("token-input").value = "";
  });
  for (const name of ["promote", "abort", "rollback"]) {
    $(name).addEventListener("click", () => act(name));
  }
  $("run-back").querySelector("a").addEventListener("click", (e) => {
    e.preventDefault();
    pin(null);
  });
  window.addEventListener("hashchange", readHash);
  readHash();
  refreshStatus();
  watchAllRuns();
  // Elapsed times move on while a run is in progress.
  setInterval(() => {
    if (state.run && !state.run.final) renderRun();
  }, 1000);
}

document.addEventListener("DOMContentLoaded", start);

// The run's charts: stable and canary over time, as SVG.

import { $, s } from "./dom.js";
import { duration, millis, number, pct, rate, share } from "./format.js";

// Beyond this many windows a chart draws its lines with only the newest point marked.
const MAX_DOTS = 120;

const CHART = { width: 320, height: 150, left: 42, right: 8, top: 12, bottom: 20 };

// The three charts of a run: request rate, error rate and p95 latency per window.
export function renderCharts(run) {
  const start = run.record ? run.record.started_at_ms : run.events[0] ? run.events[0].at_ms : Date.now();
  const end = run.final ? run.final.at_ms : Math.max(Date.now(), start + 1000);
  const marks = run.events
    .filter((e) => e.kind === "phase" && e.phase.weight_bp != null)
    .map((e) => ({ at: e.at_ms, label: pct(e.phase.weight_bp) }));
  const frame = { start, end, marks };
  const zeroOr = (format) => (v) => (v === 0 ? "0" : format(v));
  chart($("chart-rate"), run.points, "rate", frame, { floor: 1, tick: zeroOr(number), label: rate });
  chart($("chart-errors"), run.points, "errors", frame, { floor: 0.01, tick: zeroOr(share), label: share });
  chart($("chart-p95"), run.points, "p95", frame, { floor: 1, tick: zeroOr(millis), label: millis });
}

// One chart: stable and canary over the run's time, the step changes marked.
function chart(figure, points, field, frame, { floor, tick, label }) {
  const { width, height, left, right, top, bottom } = CHART;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const values = points.flatMap((p) => [p[field].stable, p[field].canary]).filter((v) => v != null);
  const max = niceMax(Math.max(floor, ...values));
  const x = (t) => left + ((t - frame.start) / Math.max(frame.end - frame.start, 1)) * plotW;
  const y = (v) => top + plotH - (v / max) * plotH;
  const svg = s("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": `${figure.querySelector("figcaption").firstChild.textContent.trim()}, stable and canary`,
    "data-points": points.length,
  });
  for (const fraction of [0, 0.5, 1]) {
    const v = max * fraction;
    svg.append(s("line", { class: "grid", x1: left, x2: width - right, y1: y(v), y2: y(v) }));
    svg.append(s("text", { class: "tick", x: left - 6, y: y(v) + 3, "text-anchor": "end" }, tick(v)));
  }
  for (const mark of frame.marks) {
    const mx = x(mark.at);
    svg.append(s("line", { class: "grid", x1: mx, x2: mx, y1: top, y2: top + plotH, "stroke-dasharray": "2 3" }));
    svg.append(s("text", { class: "tick", x: mx + 3, y: top - 2 }, mark.label));
  }
  svg.append(s("text", { class: "tick", x: left, y: height - 4 }, "0s"));
  svg.append(s("text", { class: "tick", x: width - right, y: height - 4, "text-anchor": "end" }, "+" + duration(frame.end - frame.start)));
  if (!points.length) {
    svg.append(s("text", { class: "empty", x: left + plotW / 2, y: top + plotH / 2, "text-anchor": "middle" }, "no analysis windows"));
  }
  for (const role of ["stable", "canary"]) {
    const pts = points.filter((p) => p[field][role] != null).map((p) => ({ at: p.at, v: p[field][role] }));
    if (!pts.length) continue;
    const d = pts.map((p, i) => `${i ? "L" : "M"}${x(p.at).toFixed(1)},${y(p.v).toFixed(1)}`).join(" ");
    svg.append(s("path", { class: `line ${role}`, d }));
    const dotted = pts.length > MAX_DOTS ? pts.slice(-1) : pts;
    for (const p of dotted) {
      svg.append(s("circle", { class: `dot ${role}`, cx: x(p.at).toFixed(1), cy: y(p.v).toFixed(1), r: 2.6 },
        s("title", {}, `${role} ${label(p.v)} at +${duration(p.at - frame.start)}`)));
    }
  }
  const old = figure.querySelector("svg");
  if (old) old.replaceWith(svg);
  else figure.append(svg);
}

function niceMax(v) {
  const magnitude = Math.pow(10, Math.floor(Math.log10(v)));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (v <= step * magnitude) return step * magnitude;
  }
  return 10 * magnitude;
}

// Numbers, times and words as people read them.

export function pct(bp) {
  const v = bp / 100;
  return (Number.isInteger(v) ? v : v.toFixed(2)) + "%";
}

export function duration(ms) {
  if (ms == null || !isFinite(ms)) return "—";
  if (ms < 1000) return Math.round(ms) + "ms";
  const total = Math.round(ms / 1000);
  if (total < 60) return total + "s";
  const m = Math.floor(total / 60);
  const sec = String(total % 60).padStart(2, "0");
  if (m < 60) return `${m}m ${sec}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
}

export function clock(atMs) {
  return new Date(atMs).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function dateTime(atMs) {
  const d = new Date(atMs);
  const today = new Date().toDateString() === d.toDateString();
  return today ? clock(atMs) : d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

export function number(v) {
  if (v == null) return "—";
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 0.001 || a >= 1e6)) return v.toExponential(2);
  return String(Number(v.toPrecision(4)));
}

export function rate(v) {
  return v == null ? "—" : v < 10 ? v.toFixed(1) : String(Math.round(v));
}

export function share(v) {
  if (v == null) return "—";
  const p = v * 100;
  return (p === 0 ? "0" : p < 1 ? p.toFixed(2) : p.toFixed(1)) + "%";
}

export function millis(v) {
  return v == null ? "—" : (v < 10 ? v.toFixed(1) : String(Math.round(v))) + "ms";
}

export const OUTCOME_WORDS = { promoted: "promoted", rolled_back: "rolled back", aborted: "aborted", blocked: "blocked", failed: "failed" };

// The pipeline's stages before the rollout, for people.
export const STAGE_NAMES = { schedule: "Scheduled", window: "Window", approval: "Approval" };
export const KIND_WORDS = { initial: "first deploy", canary: "canary", blue_green: "blue-green", rolling: "rolling update", rollback: "rollback" };

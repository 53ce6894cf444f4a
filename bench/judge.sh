#!/usr/bin/env bash
# Canary judgement on simulated traffic: how often a healthy canary is rolled
# back and how fast a bad one is, for cutover's sequential tests, a Flagger-like
# and a Kayenta-like policy side by side. See bench/README.md.
#
#   bash bench/judge.sh
#
# Builds bench/judge (a small Rust program, its own Cargo package) in release and
# runs it: a simulation, no processes, no network, seeded, so every run of the
# same commit gives the same numbers. Writes bench/results/judge-<date>.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly ROOT

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

log "building the simulation (bench/judge, release)"
cargo build --release --quiet --locked --manifest-path "$ROOT/bench/judge/Cargo.toml" \
    --target-dir "$ROOT/bench/judge/target"
SIMULATION=$ROOT/bench/judge/target/release/cutover-judge-bench
[[ -x "$SIMULATION" ]] || die "$SIMULATION was not built"

log "simulating canaries"
BODY=$("$SIMULATION")

mkdir -p "$ROOT/bench/results"
STAMP=$(date +%Y-%m-%d-%H%M%S)
OUT=$ROOT/bench/results/judge-$STAMP.md
commit=$(git -C "$ROOT" --no-optional-locks rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ $commit != unknown && -n $(git -C "$ROOT" --no-optional-locks status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    commit="$commit (with uncommitted changes)"
fi
{
    printf '# Canary judgement on simulated traffic, %s\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf 'Command: `bash bench/judge.sh`; cutover %s. Seeded: the same commit gives the same numbers.\n\n' "$commit"
    printf '%s\n' "$BODY"
    printf 'Machine: %s cores (%s), %s.\n' "$(nproc)" \
        "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" "$(uname -sr)"
} >"$OUT"
printf '%s\n' "$BODY"
log "written to ${OUT#"$ROOT"/}"

#!/usr/bin/env bash
# cutover's rollouts under steady load, as clients of its proxy see them. See
# bench/README.md.
#
#   bash bench/cutover.sh
#
# Three scenarios, each with its own `cutover serve` (temp config, built-in sample
# app as the service, v1 deployed first) and open-loop load at $RATE requests/s
# through the proxy, driven by bench/cutover (a small Rust program):
#   (a) blue-green flips, v1 <-> v2, $FLIPS of them: deploy, awaiting_promotion,
#       promote; the switch latency is from the promote call to the first answer
#       by the new version;
#   (b) a rolling update of 4 instances v1 -> v2, then v3 aborted half-way, so it
#       goes back batch by batch; the fewest ready instances seen all along;
#   (c) a canary waiting at 50% for promote, the daemon SIGKILLed and started
#       again: how long clients got no answer, whether the run resumed with the
#       same processes, and whether it still ends promoted.
# Everything listens on 127.0.0.1; everything started here is stopped on exit.
# Exits non-zero when an expectation fails (see the results file).
# CUTOVER_BENCH_KEEP=DIR keeps the temp files (every request as CSV, the daemons'
# logs and state) in DIR.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly ROOT
readonly RATE=200 FLIPS=50
readonly SCENARIOS=(blue-green rolling restart)

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

command -v python3 >/dev/null 2>&1 || die "python3 is needed to pick free ports"
command -v setsid >/dev/null 2>&1 || die "setsid (util-linux) is needed"
command -v pgrep >/dev/null 2>&1 || die "pgrep (procps) is needed"

# --- processes, and stopping them -------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cutover-bench.XXXXXX")
CHILD=""

# Runs a command in a session of its own and waits for it. A signal to this script
# interrupts the wait at once, and everything the command started (cargo and its
# rustc; the driver, its daemons and their instances, which keep the session
# although each instance has a process group of its own) can be found by the
# session id, which is $CHILD.
run_child() {
    local status=0
    setsid "$@" &
    CHILD=$!
    wait "$CHILD" || status=$?
    reap_session "$CHILD"
    CHILD=""
    return "$status"
}

# Whatever is left in session $1 once its leader is gone: a daemon still draining
# gets 20 s to stop its instances (the driver sends SIGTERM to its daemon when it
# fails), then a second SIGTERM (stop every child at once), then SIGKILL for
# anything still there.
reap_session() {
    local sid=$1 deadline=$((SECONDS + 20)) pids
    while [[ -n "$(pgrep -s "$sid" || true)" ]] && ((SECONDS < deadline)); do sleep 0.1; done
    pids=$(pgrep -g "$sid" || true)
    if [[ -n "$pids" ]]; then
        log "session $sid: still running 20s on: $(tr '\n' ' ' <<<"$pids"); second SIGTERM"
        # shellcheck disable=SC2086 # one pid per word
        kill -TERM $pids 2>/dev/null || true
        deadline=$((SECONDS + 5))
        while [[ -n "$(pgrep -s "$sid" || true)" ]] && ((SECONDS < deadline)); do sleep 0.1; done
    fi
    pids=$(pgrep -s "$sid" || true)
    if [[ -n "$pids" ]]; then
        log "session $sid: killing what is left: $(tr '\n' ' ' <<<"$pids")"
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
    fi
}

cleanup() {
    local status=$?
    set +e
    if [[ -n "$CHILD" ]]; then
        # The driver and the daemon beside it (same process group); the daemon
        # drains and stops its instances.
        kill -TERM -- -"$CHILD" 2>/dev/null
        wait "$CHILD" 2>/dev/null
        reap_session "$CHILD"
    fi
    if [[ -n "${CUTOVER_BENCH_KEEP:-}" ]]; then
        # Every request as CSV, the configs, the daemons' logs and state dirs.
        mkdir -p "$CUTOVER_BENCH_KEEP" && cp -r "$WORK"/. "$CUTOVER_BENCH_KEEP"/ &&
            log "kept the temp files in $CUTOVER_BENCH_KEEP"
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "building cutover (release)"
run_child cargo build --release --quiet -p cutover --manifest-path "$ROOT/Cargo.toml"
CUTOVER=$ROOT/target/release/cutover
[[ -x "$CUTOVER" ]] || die "$CUTOVER was not built"
log "building the load driver (bench/cutover, release)"
run_child cargo build --release --quiet --locked --manifest-path "$ROOT/bench/cutover/Cargo.toml"
DRIVER=$ROOT/bench/cutover/target/release/cutover-bench
[[ -x "$DRIVER" ]] || die "$DRIVER was not built"


# --- configurations ---------------------------------------------------------------

# The proxy's port is fixed (not 0) so that a daemon started again, in (c), listens
# where the clients already send their requests.
write_config() {
    local scenario=$1 port=$2 instances=$3 strategy=$4
    cat <<EOF
app: bench
listen: 127.0.0.1:$port
state_dir: $WORK/state-$scenario
platform:
  local:
    command: ["$CUTOVER", "sample-app", "--port", "\${PORT}", "--version", "\${VERSION}"]
    instances: $instances
    startup_timeout: 10s
    drain_timeout: 2s
health:
  path: /healthz
  interval: 100ms
  timeout: 500ms
  healthy_threshold: 1
  unhealthy_threshold: 2
strategy:
$strategy
analysis:
  interval: 500ms
  min_requests: 5
  failure_limit: 1
  inconclusive_limit: 20
  metrics:
    error_rate: { max: 5% }
EOF
}

config_for() {
    local scenario=$1 port=$2
    case $scenario in
    blue-green) write_config "$scenario" "$port" 2 '  blue_green: { auto_promote: false, scale_down_delay: 0s }' ;;
    rolling) write_config "$scenario" "$port" 4 '  rolling: { max_surge: 1, max_unavailable: 0, pause: 1s }' ;;
    restart) write_config "$scenario" "$port" 2 '  canary: { steps: [{weight: 50%, pause: until-promoted}] }' ;;
    esac
}

label_of() {
    case $1 in
    blue-green) echo '(a)' ;;
    rolling) echo '(b)' ;;
    restart) echo '(c)' ;;
    esac
}

# Each scenario ends well within its limit; the load stops by itself at it.
time_limit_for() {
    case $1 in
    blue-green) echo 110 ;;
    rolling) echo 90 ;;
    restart) echo 60 ;;
    esac
}

# --- the scenarios ------------------------------------------------------------------

warn_if_busy

FAILED=()
for scenario in "${SCENARIOS[@]}"; do
    log "=== $scenario"
    config=$WORK/$scenario.yaml
    config_for "$scenario" "$(free_port)" >"$config"
    "$CUTOVER" validate -f "$config" >/dev/null || die "$config: $("$CUTOVER" validate -f "$config" 2>&1)"
    status=0
    run_child "$DRIVER" "$scenario" \
        --cutover "$CUTOVER" --config "$config" --state-dir "$WORK/state-$scenario" \
        --log "$WORK/serve-$scenario.log" --markdown "$WORK/$scenario.md" --records "$WORK/$scenario.csv" \
        --rate "$RATE" --flips "$FLIPS" --time-limit "$(time_limit_for "$scenario")" || status=$?
    echo
    if ((status != 0)); then
        FAILED+=("$scenario")
        if [[ ! -s "$WORK/$scenario.md" ]]; then
            # It could not run at all: what the daemon said is the evidence.
            printf '## %s\n\nThe driver exited with %s before measuring anything. The daemon log ends:\n\n```\n%s\n```\n' \
                "$scenario" "$status" "$(tail -n 30 "$WORK/serve-$scenario.log" 2>/dev/null)" >"$WORK/$scenario.md"
            log "$scenario: the driver exited with $status; the daemon log ends:"
            tail -n 30 "$WORK/serve-$scenario.log" >&2 2>/dev/null || true
        fi
    fi
done
BUSY_AFTER=$(cpu_busy_percent)

# --- the results file ----------------------------------------------------------------

mkdir -p "$ROOT/bench/results"
STAMP=$(date +%Y-%m-%d-%H%M%S)
OUT=$ROOT/bench/results/cutover-$STAMP.md
commit=$(git -C "$ROOT" --no-optional-locks rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ $commit != unknown && -n $(git -C "$ROOT" --no-optional-locks status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    commit="$commit (with uncommitted changes)"
fi
{
    printf '# cutover rollouts under load, %s\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf 'Command: `bash bench/cutover.sh`; cutover %s.\n\n' "$commit"
    printf 'Load: %s requests/s, open-loop (each sent on schedule whether or not the earlier ones were answered), ' "$RATE"
    printf '`GET /` through cutover'"'"'s proxy over 8 keep-alive connections, 2 s timeout; '
    printf 'the service is `cutover sample-app`; all on 127.0.0.1.\n\n'
    if ((${#FAILED[@]})); then
        printf '**Expectations failed in: %s.**\n\n' "${FAILED[*]}"
    else
        printf 'Every expectation held.\n\n'
    fi
    for scenario in "${SCENARIOS[@]}"; do
        cat "$WORK/$scenario.md"
        printf '\n'
    done
    printf 'CPU use by other work, over 1 s before the runs: %s%%; after them: %s%%.\n\n' "$BUSY_BEFORE" "$BUSY_AFTER"
    printf 'Machine: %s cores (%s), %s.\n\n' "$(nproc)" \
        "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" "$(uname -sr)"
    printf '## Configs\n\nThe temp directory is shown as `$WORK`; the proxy port was picked free per scenario.\n\n'
    for scenario in "${SCENARIOS[@]}"; do
        printf '### %s %s\n\n```yaml\n%s\n```\n\n' "$(label_of "$scenario")" "$scenario" "$(sed "s|$WORK|\$WORK|g; s|$ROOT/|./|g" "$WORK/$scenario.yaml")"
    done
} >"$OUT"
log "written to ${OUT#"$ROOT"/}"
((${#FAILED[@]} == 0)) || die "expectations failed in: ${FAILED[*]}"

#!/usr/bin/env bash
# cutover's proxy side by side with nginx and HAProxy as reverse proxies, in the same
# run, in front of the same two upstream processes, with the same 90/10 split between
# them, reported as medians and ratios. See bench/README.md.
#
#   bash bench/proxy.sh
#
#   1. `cutover serve` with a temp config whose instances are static nginx
#      responders, `cutover deploy v1`, then `cutover deploy v2` held at a 10% canary
#      step: the daemon starts both upstreams and its proxy splits 90/10, measuring
#      each version;
#   2. nginx (1 and 2 workers) and HAProxy (1 and 2 threads) as reverse proxies to
#      the SAME two upstream processes (their ports are written down by the
#      instances' wrapper), weights 9 and 1, keep-alive upstream connections;
#   3. wrk -t2 --latency, a warmup then a measured run, for each body (tiny, 64 KiB),
#      each connection count (64, 256) and each path (direct to v1's upstream, the
#      four peers, cutover), one after another, in ROUNDS interleaved rounds; the
#      table has the medians.
# Everything listens on 127.0.0.1; everything started here is stopped on exit.
#
# CUTOVER_BIN=path uses that binary instead of building one (to compare builds).
#
#   bash bench/proxy.sh --callgrind
#
# instead runs the daemon under `valgrind --tool=callgrind` and reports the
# instructions it executes per proxied request (Ir/request), for each body, at 64
# connections: a figure that, unlike requests/s, a busy machine does not move. The
# idle daemon's own instructions per second (health checks, analysis windows) are
# measured too and taken off. The callgrind files are kept in target/callgrind/
# (callgrind_annotate reads them).
#
#   bash bench/proxy.sh --perf
#
# samples the daemon with `perf record` (cpu-clock, user and kernel) while wrk
# loads it, for each body at 64 connections, and prints perf's top entries; the
# perf.data files are kept in target/perf/.
set -euo pipefail

MODE=compare
case "${1:-}" in
"") ;;
--callgrind) MODE=callgrind ;;
--perf) MODE=perf ;;
*)
    echo "usage: bash bench/proxy.sh [--callgrind | --perf]" >&2
    exit 2
    ;;
esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly ROOT
# BENCH_ROUNDS and BENCH_DURATION override the rounds and the measured time per row
# (for a quick look; the results file says what was used).
readonly WARMUP=1s DURATION=${BENCH_DURATION:-3s} ROUNDS=${BENCH_ROUNDS:-3} WRK_THREADS=2
# BENCH_PROXY_THREADS sets the daemon's `proxy.threads` (0, the default: its proxy
# serves on the daemon's runtime; 2: thread per core on this machine).
readonly PROXY_THREADS=${BENCH_PROXY_THREADS:-0}
readonly CONNECTIONS=(64 256)
readonly BODIES=(tiny 64k)
readonly PATHS=(direct nginx-1w nginx-2w haproxy-1t haproxy-2t cutover)
readonly PEERS=(nginx-1w nginx-2w haproxy-1t haproxy-2t)

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

# --- 1. tools and the build -------------------------------------------------------

# A tool on PATH or in /usr/sbin (Debian puts nginx and haproxy there).
find_tool() { command -v "$1" 2>/dev/null || { [[ -x /usr/sbin/$1 ]] && echo "/usr/sbin/$1"; } || true; }

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
[[ -n "$(find_tool nginx)" ]] || missing+=(nginx-light)
[[ -n "$(find_tool haproxy)" ]] || missing+=(haproxy)
if ((${#missing[@]})); then
    sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    log "installing ${missing[*]} with apt-get"
    "${sudo[@]}" apt-get update
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y "${missing[@]}"
fi
NGINX=$(find_tool nginx)
HAPROXY=$(find_tool haproxy)
[[ -n "$NGINX" ]] || die "nginx is not installed"
[[ -n "$HAPROXY" ]] || die "haproxy is not installed"
command -v wrk >/dev/null 2>&1 || die "wrk is not installed"
command -v python3 >/dev/null 2>&1 || die "python3 is needed to pick free ports and for the table"
command -v curl >/dev/null 2>&1 || die "curl is needed for the sanity checks"
command -v setsid >/dev/null 2>&1 || die "setsid (util-linux) is needed"
if [[ $MODE == perf ]]; then
    command -v perf >/dev/null 2>&1 || die "perf is needed for --perf (apt-get install linux-perf)"
fi
if [[ $MODE == callgrind ]]; then
    command -v valgrind >/dev/null 2>&1 || die "valgrind is needed for --callgrind (apt-get install valgrind)"
fi

# --- processes, and stopping them -------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cutover-bench.XXXXXX")
DAEMON_PID=""
PEER_PIDS=()
CHILD=""

# Runs a command in its own process group and waits for it. A signal to this script
# interrupts the wait at once (a foreground command would delay the trap), and
# cleanup stops the whole group (cargo and its rustc, timeout and its wrk).
run_child() {
    local status=0
    setsid "$@" &
    CHILD=$!
    wait "$CHILD" || status=$?
    CHILD=""
    return "$status"
}

# Waits up to $2 seconds for process $1 (a child of this shell) to exit.
wait_gone() {
    local pid=$1 deadline=$((SECONDS + $2))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    ! kill -0 "$pid" 2>/dev/null
}

stop_peers() {
    local pid
    for pid in "${PEER_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
        wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PEER_PIDS=()
}

stop_daemon() {
    [[ -n "$DAEMON_PID" ]] || return 0
    kill -TERM "$DAEMON_PID" 2>/dev/null || true # drains and stops its instances
    if ! wait_gone "$DAEMON_PID" 20; then
        log "daemon still running 20s after SIGTERM; second signal"
        kill -TERM "$DAEMON_PID" 2>/dev/null || true # stops every child at once
        wait_gone "$DAEMON_PID" 5 || kill -KILL "$DAEMON_PID" 2>/dev/null || true
    fi
    wait "$DAEMON_PID" 2>/dev/null || true
    DAEMON_PID=""
    # Belt and braces: an upstream nginx the daemon somehow left behind.
    local pidfile pid
    for pidfile in "$WORK"/upstream-*/nginx.pid; do
        if [[ -s "$pidfile" ]] && pid=$(<"$pidfile") && kill -0 "$pid" 2>/dev/null; then
            log "upstream nginx $pid outlived the daemon; stopping it"
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
}

cleanup() {
    local status=$?
    set +e
    if [[ -n "$CHILD" ]]; then
        kill -TERM -- -"$CHILD" 2>/dev/null
        wait "$CHILD" 2>/dev/null
    fi
    stop_peers
    stop_daemon
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -n "${CUTOVER_BIN:-}" ]]; then
    CUTOVER=$CUTOVER_BIN
else
    log "building cutover (release)"
    run_child cargo build --release --quiet -p cutover --manifest-path "$ROOT/Cargo.toml"
    CUTOVER=${CARGO_TARGET_DIR:-$ROOT/target}/release/cutover
fi
[[ -x "$CUTOVER" ]] || die "$CUTOVER was not built"

# Waits up to $3 seconds for GET $1 to answer 200 with a body containing $2.
wait_http() {
    local url=$1 want=$2 deadline=$((SECONDS + $3)) body
    while ((SECONDS < deadline)); do
        if body=$(curl -fsS --max-time 1 "$url" 2>/dev/null) && [[ $body == *"$want"* ]]; then
            return 0
        fi
        sleep 0.2
    done
    die "$url did not answer 200 with \"$want\" within $3s"
}

# --- configurations ---------------------------------------------------------------

# The part every nginx here shares: $2 workers, logs and temp files in its own dir,
# keep-alive connections never closed by a request count (hyper has no such limit).
nginx_common() {
    local dir=$1 workers=$2
    cat <<EOF
worker_processes $workers;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
EOF
}
nginx_http_common() {
    local dir=$1
    cat <<EOF
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
EOF
}

# The static upstream, run by cutover as each version's instance:
# `upstream-nginx.sh PORT VERSION`. `/` answers "hello", `/64k` a 64 KiB file.
write_upstream_nginx() {
    local version dir
    head -c 65536 /dev/zero | tr '\0' 'x' >"$WORK/64k"
    # nginx's workers run as another user when it is started as root.
    chmod 755 "$WORK" && chmod 644 "$WORK/64k"
    for version in v1 v2; do
        dir=$WORK/upstream-$version
        mkdir -p "$dir"
        {
            nginx_common "$dir" 1
            echo 'http {'
            nginx_http_common "$dir"
            cat <<EOF
    sendfile on;
    server {
        listen 127.0.0.1:@PORT@;
        default_type text/plain;
        location = /64k { alias $WORK/64k; }
        location / { return 200 "hello\n"; }
    }
}
EOF
        } >"$dir/nginx.conf.in"
    done
    cat >"$WORK/upstream-nginx.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
dir=$WORK/upstream-\$2
sed "s/@PORT@/\$1/" "\$dir/nginx.conf.in" >"\$dir/nginx.conf"
echo "\$1" >"$WORK/upstream-port-\$2"
exec "$NGINX" -p "\$dir" -e "\$dir/error.log" -c "\$dir/nginx.conf" -g 'daemon off;'
EOF
    chmod +x "$WORK/upstream-nginx.sh"
}

# The canary is held at 10% (until-promoted) for the whole run. Per-version
# measurement is on as always; the judge's statistical tests are off so that a
# chance verdict on identical versions cannot roll the split back mid-run (the
# proxy records the same either way; the engine reads it once per window).
write_cutover_config() {
    local port=$1 file=$2
    cat >"$file" <<EOF
app: bench
listen: 127.0.0.1:$port
state_dir: $WORK/state
platform:
  local:
    command: ["$WORK/upstream-nginx.sh", "\${PORT}", "\${VERSION}"]
    instances: 1
    startup_timeout: 15s
    drain_timeout: 1s
health:
  path: /healthz
  interval: 1s
strategy:
  canary:
    steps:
      - { weight: 10%, pause: until-promoted }
analysis:
  sequential: false
  comparison: false
  logs: false
proxy:
  threads: $PROXY_THREADS
EOF
}

# nginx as a reverse proxy with $2 workers on port $1, 90/10 to the two upstreams.
start_nginx_proxy() {
    local port=$1 workers=$2 dir=$WORK/proxy-nginx-$2
    rm -rf "$dir" && mkdir -p "$dir"
    {
        nginx_common "$dir" "$workers"
        echo 'http {'
        nginx_http_common "$dir"
        cat <<EOF
    upstream app {
        server 127.0.0.1:$V1_PORT weight=9;
        server 127.0.0.1:$V2_PORT weight=1;
        keepalive 512;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
        }
    }
}
EOF
    } >"$dir/nginx.conf"
    "$NGINX" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" -g 'daemon off;' \
        >"$dir/stdout.log" 2>&1 &
    PEER_PIDS+=($!)
}

# HAProxy with $2 threads on port $1, 90/10 to the two upstreams; idle server
# connections are kept and reused by any request (`http-reuse always`).
start_haproxy() {
    local port=$1 threads=$2 dir=$WORK/proxy-haproxy-$2
    rm -rf "$dir" && mkdir -p "$dir"
    cat >"$dir/haproxy.cfg" <<EOF
global
    nbthread $threads
    maxconn 4096
defaults
    mode http
    option forwardfor
    http-reuse always
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 60s
frontend bench
    bind 127.0.0.1:$port
    http-request set-header X-Forwarded-Proto http
    default_backend app
backend app
    balance roundrobin
    server v1 127.0.0.1:$V1_PORT weight 9
    server v2 127.0.0.1:$V2_PORT weight 1
EOF
    "$HAPROXY" -db -f "$dir/haproxy.cfg" >"$dir/stdout.log" 2>&1 &
    PEER_PIDS+=($!)
}

# --- measuring ----------------------------------------------------------------------

# A wrk latency ("812.00us", "1.23ms", "2.00s", "1.00m") in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.3f", n }'
}

RESULTS="$WORK/results.txt" # "body|conns|path|round|rps|p50ms|p99ms|requests|errors|cpu_us"
declare -A PIDS # path -> the processes doing its work (a proxy, or the direct upstream)

# CPU time (user + system, in clock ticks) used so far by the processes $1 (space
# separated) and their children (nginx's workers). A process's threads are in its
# own figure; the daemon's instances are not its children here: they are not
# waited for, so their time is not added to the daemon's.
cpu_ticks() {
    local pid all=() total=0
    for pid in $1; do
        all+=("$pid")
        mapfile -t -O "${#all[@]}" all < <(pgrep -P "$pid" || true)
    done
    for pid in "${all[@]}"; do
        # Fields 14 and 15 of stat, counted after the command's closing parenthesis.
        total=$((total + $(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}
RAW="$WORK/raw.txt"
: >"$RESULTS"
: >"$RAW"

# measure BODY CONNS PATH ROUND URL
measure() {
    local body=$1 conns=$2 path=$3 round=$4 url=$5 out
    run_child timeout 30 wrk -t"$WRK_THREADS" -c"$conns" -d"$WARMUP" "$url" >/dev/null
    local ticks_before ticks
    ticks_before=$(cpu_ticks "${PIDS[$path]}")
    run_child timeout 30 wrk -t"$WRK_THREADS" -c"$conns" -d"$DURATION" --timeout 2s --latency \
        "$url" >"$WORK/wrk.out"
    ticks=$(($(cpu_ticks "${PIDS[$path]}") - ticks_before))
    out=$(<"$WORK/wrk.out")
    printf '### round %s, %s body, %s connections, %s (%s)\n\n```\n%s\n```\n\n' \
        "$round" "$body" "$conns" "$path" "$url" "$out" >>"$RAW"
    local rps p50 p99 requests non2xx sockerr
    rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    p50=$(awk '$1 == "50%" { print $2 }' <<<"$out")
    p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
    requests=$(awk '/ requests in / { print $1 }' <<<"$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' <<<"$out")
    sockerr=$(awk '/Socket errors:/ { gsub(",", ""); print $4 + $6 + $8 + $10 }' <<<"$out")
    [[ -n "$rps" && -n "$p50" && -n "$p99" ]] || die "cannot parse wrk output:
$out"
    local errors=$((${non2xx:-0} + ${sockerr:-0}))
    local cpu_us
    cpu_us=$(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v n="$requests" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }')
    printf '%s|%s|%s|%s|%s|%s|%s|%s|%s|%s\n' "$body" "$conns" "$path" "$round" "$rps" \
        "$(to_ms "$p50")" "$(to_ms "$p99")" "$requests" "$errors" "$cpu_us" >>"$RESULTS"
    log "round $round, $body, $conns connections, $path: $rps requests/s, p99 $p99, $errors errors"
}

# The daemon's status, as JSON.
status_json() { "$CUTOVER" status --json -f "$CONFIG"; }

# Requests per version so far, from the daemon's own counters: "v1=123 v2=45".
proxy_counts() {
    status_json | python3 -c 'import json, sys
s = json.load(sys.stdin)
print(" ".join("%s=%s/%s" % (t["version"], t["requests"], t["errors_5xx"]) for t in s["traffic"]))'
}

# Whether the canary v2 serves at 10% now.
canary_held() {
    status_json | python3 -c 'import json, sys
s = json.load(sys.stdin)
phase = (s.get("active_run") or {}).get("phase") or {}
sys.exit(0 if phase.get("weight_bp") == 1000 else 1)'
}

# Waits up to 60 s for callgrind's dump number $1 of the daemon to be written
# whole (its last line is `totals:`); prints its path.
callgrind_dump() {
    local file=$WORK/callgrind.out.$DAEMON_PID.$1 deadline=$((SECONDS + 60))
    while ! grep -q '^totals:' "$file" 2>/dev/null; do
        ((SECONDS < deadline)) || die "callgrind did not write $file within 60s: $(ls "$WORK")"
        sleep 0.2
    done
    echo "$file"
}

# Instructions in the callgrind file $1, as callgrind_annotate adds them up.
callgrind_total() {
    callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); total = $1 } END { print total + 0 }'
}

# --callgrind: Ir per request through the daemon started under callgrind, whose
# collection is switched on only around each measured run.
profile_callgrind() {
    local body conns=64 before after requests ir idle_ir idle_s=5 file dumps=1
    local dir=$ROOT/target/callgrind
    mkdir -p "$dir"
    rm -f "$WORK"/callgrind.out.*
    # The idle daemon, for what to take off.
    callgrind_control -i on "$DAEMON_PID" >/dev/null
    sleep "$idle_s"
    callgrind_control -i off "$DAEMON_PID" >/dev/null
    callgrind_control -d idle "$DAEMON_PID" >/dev/null
    file=$(callgrind_dump "$dumps")
    idle_ir=$(callgrind_total "$file")
    log "idle daemon: $((idle_ir / idle_s)) Ir/s"
    PROFILE_LINES=("| idle daemon | | | $((idle_ir / idle_s)) Ir/s |")
    for body in "${BODIES[@]}"; do
        callgrind_control -z "$DAEMON_PID" >/dev/null
        before=$(proxy_total)
        callgrind_control -i on "$DAEMON_PID" >/dev/null
        SECONDS_START=$SECONDS
        run_child timeout 60 wrk -t"$WRK_THREADS" -c"$conns" -d10s --timeout 10s \
            "${url[cutover]}${target[$body]}" >"$WORK/wrk.out"
        callgrind_control -i off "$DAEMON_PID" >/dev/null
        local took=$((SECONDS - SECONDS_START))
        after=$(proxy_total)
        dumps=$((dumps + 1))
        callgrind_control -d "body-$body" "$DAEMON_PID" >/dev/null
        file=$(callgrind_dump "$dumps")
        ir=$(callgrind_total "$file")
        requests=$((after - before))
        ((requests > 0)) || die "no request was proxied under callgrind: $(cat "$WORK/wrk.out")"
        local per=$(((ir - idle_ir * took / idle_s) / requests))
        log "$body body, $conns connections: $requests requests, $ir Ir in ${took}s: $per Ir/request"
        PROFILE_LINES+=("| $body | $conns | $requests | $per |")
        cp "$file" "$dir/callgrind-$body.out"
    done
}

# --perf: where the daemon's time goes, user and kernel, per body.
profile_perf() {
    local body dir=$ROOT/target/perf
    mkdir -p "$dir"
    PROFILE_LINES=()
    for body in "${BODIES[@]}"; do
        run_child timeout 60 wrk -t"$WRK_THREADS" -c64 -d10s "${url[cutover]}${target[$body]}" >"$WORK/wrk.out" &
        local load=$!
        sleep 1
        perf record -q -e cpu-clock -F 999 -p "$DAEMON_PID" -o "$dir/perf-$body.data" -- sleep 8 2>/dev/null
        wait "$load" || true
        PROFILE_LINES+=("### $body body" '```'
            "$(perf report -i "$dir/perf-$body.data" --no-children --sort dso,symbol --percent-limit 1 --stdio 2>/dev/null |
                grep -v '^#' | grep -v '^$' | head -40)" '```')
    done
}

# Requests proxied so far, all versions, from the daemon's own counters.
proxy_total() {
    status_json | python3 -c 'import json, sys
print(sum(t["requests"] for t in json.load(sys.stdin)["traffic"]))'
}

# --- 2 and 3. the runs ----------------------------------------------------------------

write_upstream_nginx
cutover_port=$(free_port)
CONFIG=$WORK/cutover.yaml
write_cutover_config "$cutover_port" "$CONFIG"
"$CUTOVER" validate -f "$CONFIG" >/dev/null

under=()
if [[ $MODE == callgrind ]]; then
    under=(valgrind --tool=callgrind --instr-atstart=no
        "--callgrind-out-file=$WORK/callgrind.out.%p")
fi
"${under[@]}" "$CUTOVER" serve -f "$CONFIG" >"$WORK/serve.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 300); do
    [[ -s "$WORK/state/daemon.json" ]] && break
    kill -0 "$DAEMON_PID" 2>/dev/null || die "cutover serve exited: $(cat "$WORK/serve.log")"
    sleep 0.1
done
[[ -s "$WORK/state/daemon.json" ]] || die "cutover serve wrote no daemon.json in 30s"
run_child timeout 120 "$CUTOVER" deploy v1 -f "$CONFIG" >"$WORK/deploy-v1.log" 2>&1 ||
    die "cutover deploy v1 failed: $(cat "$WORK/deploy-v1.log")"
run_child timeout 60 "$CUTOVER" deploy v2 --no-wait -f "$CONFIG" >"$WORK/deploy-v2.log" 2>&1 ||
    die "cutover deploy v2 failed: $(cat "$WORK/deploy-v2.log")"
for _ in $(seq 300); do
    canary_held && break
    sleep 0.2
done
canary_held || die "the canary v2 did not reach its 10% step within 60s: $(status_json)"
[[ -s "$WORK/upstream-port-v1" && -s "$WORK/upstream-port-v2" ]] ||
    die "the upstreams did not write down their ports"
V1_PORT=$(<"$WORK/upstream-port-v1")
V2_PORT=$(<"$WORK/upstream-port-v2")

declare -A url=([direct]="http://127.0.0.1:$V1_PORT" [cutover]="http://127.0.0.1:$cutover_port")
declare -A target=([tiny]=/ [64k]=/64k)

if [[ $MODE == perf ]]; then
    wait_http "${url[cutover]}/" "hello" 30
    profile_perf
    printf '%s\n' "${PROFILE_LINES[@]}"
    exit 0
fi

if [[ $MODE == callgrind ]]; then
    wait_http "${url[cutover]}/" "hello" 30
    profile_callgrind
    commit=$(git -C "$ROOT" --no-optional-locks rev-parse --short HEAD 2>/dev/null || echo unknown)
    [[ -z "${CUTOVER_BIN:-}" ]] || commit="$commit, binary $CUTOVER_BIN"
    TABLE=$(printf '| body | conns | requests | Ir/request |\n|---|---:|---:|---:|\n'
        printf '%s\n' "${PROFILE_LINES[@]}")
    printf '\n%s\n' "$TABLE"
    OUT=$ROOT/bench/results/proxy-callgrind-$(date +%Y-%m-%d-%H%M%S).md
    {
        printf '# cutover proxy under callgrind, %s\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
        printf 'Command: `BENCH_PROXY_THREADS=%s bash bench/proxy.sh --callgrind`; cutover %s. ' \
            "$PROXY_THREADS" "$commit"
        printf 'wrk -t%s for 10 s per body; a canary held at 10%%; ' "$WRK_THREADS"
        printf "instructions of the daemon's process while the load ran, less the idle daemon's, "
        printf "per request it counted.\n\n%s\n" "$TABLE"
    } >"$OUT"
    log "written to ${OUT#"$ROOT"/}; callgrind files in target/callgrind/"
    exit 0
fi

for workers in 1 2; do
    port=$(free_port)
    start_nginx_proxy "$port" "$workers"
    url[nginx-${workers}w]="http://127.0.0.1:$port"
    PIDS[nginx-${workers}w]=${PEER_PIDS[-1]}
    port=$(free_port)
    start_haproxy "$port" "$workers"
    url[haproxy-${workers}t]="http://127.0.0.1:$port"
    PIDS[haproxy-${workers}t]=${PEER_PIDS[-1]}
done
PIDS[cutover]=$DAEMON_PID
PIDS[direct]=$(<"$WORK/upstream-v1/nginx.pid")
for path in "${PATHS[@]}"; do
    wait_http "${url[$path]}/" "hello" 10
    [[ $(curl -fsS --max-time 2 "${url[$path]}/64k" | wc -c) -eq 65536 ]] ||
        die "$path did not answer /64k with 64 KiB"
done
curl -fsSi --max-time 1 "${url[cutover]}/" | grep -qi '^x-cutover-version: v[12]' ||
    die "cutover's proxy did not say which version served"

warn_if_busy
COUNTS_BEFORE=$(proxy_counts)
for round in $(seq "$ROUNDS"); do
    for body in "${BODIES[@]}"; do
        for conns in "${CONNECTIONS[@]}"; do
            for path in "${PATHS[@]}"; do
                measure "$body" "$conns" "$path" "$round" "${url[$path]}${target[$body]}"
            done
        done
    done
done
BUSY_AFTER=$(cpu_busy_percent)
COUNTS_AFTER=$(proxy_counts)
canary_held || die "the canary split was not held through the run: $(status_json)"

# --- 4. the tables ------------------------------------------------------------------

# Medians over the rounds per body, connections and path; ratios to the best peer
# (by median requests/s, its p99 beside it) and to direct.
TABLES=$(python3 - "$RESULTS" "${PATHS[*]}" "${PEERS[*]}" <<'EOF'
import statistics, sys
rows = [l.split("|") for l in open(sys.argv[1]).read().split("\n") if l]
paths, peers = sys.argv[2].split(), sys.argv[3].split()
runs = {}
for body, conns, path, _round, rps, p50, p99, _requests, errors, cpu in rows:
    runs.setdefault((body, int(conns), path), []).append(
        (float(rps), float(p50), float(p99), int(errors), float(cpu)))
med = lambda values: statistics.median(values)
for body in dict.fromkeys(r[0] for r in rows):
    print("#### %s body\n" % ("64 KiB" if body == "64k" else "tiny (6 bytes)"))
    print("| conns | path | requests/s | p50 ms | p99 ms | errors | CPU µs/request | ÷ best peer (req/s) | ÷ best peer (p99) | ÷ direct |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for conns in sorted({c for (b, c, _) in runs if b == body}):
        m = {p: (med(r[0] for r in runs[body, conns, p]), med(r[1] for r in runs[body, conns, p]),
                 med(r[2] for r in runs[body, conns, p]), sum(r[3] for r in runs[body, conns, p]),
                 med(r[4] for r in runs[body, conns, p]))
             for p in paths if (body, conns, p) in runs}
        best = max(peers, key=lambda p: m[p][0])
        for p in paths:
            rps, p50, p99, errors, cpu = m[p]
            vs_best = "**%.2f**" % (rps / m[best][0]) if p == "cutover" else ("best" if p == best else "%.2f" % (rps / m[best][0]))
            p99_best = "**%.2f**" % (p99 / m[best][2]) if p == "cutover" else ("" if p == best else "%.2f" % (p99 / m[best][2]))
            print("| %d | %s | %.0f | %.3f | %.3f | %d | %.1f | %s | %s | %.2f |" % (
                conns, p, rps, p50, p99, errors, cpu, vs_best, p99_best, rps / m["direct"][0]))
    print()
EOF
)
printf '\n%s\n' "$TABLES"
log "cutover's own counters (requests/5xx per version) before the runs: $COUNTS_BEFORE; after: $COUNTS_AFTER"

mkdir -p "$ROOT/bench/results"
STAMP=$(date +%Y-%m-%d-%H%M%S)
OUT=$ROOT/bench/results/proxy-$STAMP.md
commit=$(git -C "$ROOT" --no-optional-locks rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ $commit != unknown && -n $(git -C "$ROOT" --no-optional-locks status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    commit="$commit (with uncommitted changes)"
fi
[[ -z "${CUTOVER_BIN:-}" ]] || commit="$commit, binary $CUTOVER_BIN"
{
    printf '# cutover proxy vs nginx and HAProxy, %s\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf 'Command: `BENCH_PROXY_THREADS=%s bash bench/proxy.sh`; cutover %s, `proxy.threads: %s`.\n\n' \
        "$PROXY_THREADS" "$commit" "$PROXY_THREADS"
    printf 'wrk -t%s, %s warmup then %s measured per row; %s interleaved rounds, medians; ' \
        "$WRK_THREADS" "$WARMUP" "$DURATION" "$ROUNDS"
    printf 'all on 127.0.0.1. Two static nginx upstreams (1 worker each), started by cutover as v1 and v2; '
    printf 'every proxy splits 90/10 between them (cutover: a canary held at its 10%% step), '
    printf '`direct` goes to v1 alone. Errors: non-2xx responses and socket errors, summed over the rounds.\n\n'
    printf '%s\n\n' "$TABLES"
    printf "cutover proxy's own counters, requests/5xx per version (warmups included): "
    printf 'before the runs %s; after %s.\n' "$COUNTS_BEFORE" "$COUNTS_AFTER"
    printf '\nCPU use by other work, over 1 s before the runs: %s%%; after them: %s%%.\n' "$BUSY_BEFORE" "$BUSY_AFTER"
    printf '\nMachine: %s cores (%s), %s; %s; %s; %s.\n\n' "$(nproc)" \
        "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" "$(uname -sr)" \
        "$("$NGINX" -v 2>&1)" "$("$HAPROXY" -v 2>&1 | head -1 | awk '{ print $1, $2, $3 }')" \
        "$(wrk -v 2>&1 | head -1 | awk '{ print $1, $2 }')"
    printf '## Raw wrk output\n\n'
    cat "$RAW"
} >"$OUT"
log "written to ${OUT#"$ROOT"/}"

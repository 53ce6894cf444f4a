#!/usr/bin/env bash
# cutover's proxy side by side with nginx as a reverse proxy, in the same run, in
# front of the same upstream process, reported as ratios. See bench/README.md.
#
#   bash bench/proxy.sh
#
# For each upstream kind (a static nginx responder, then `cutover sample-app`):
#   1. `cutover serve` with a temp config whose one instance is that upstream, then
#      `cutover deploy v1`: the daemon starts the upstream and its proxy fronts it;
#   2. an nginx reverse proxy (1 worker, keep-alive upstream) in front of the SAME
#      upstream process (its port is written down by the instance's wrapper);
#   3. wrk -t1 --latency, 2s warmup then 8s measured, at 32 and 128 connections,
#      one path after another: direct to the upstream, through nginx, through cutover.
# Everything listens on 127.0.0.1; everything started here is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly ROOT
readonly WARMUP=2s DURATION=8s
readonly CONNECTIONS=(32 128)
readonly UPSTREAMS=(nginx sample-app)
readonly PATHS=(direct nginx cutover)

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

# --- 1. tools and the build -------------------------------------------------------

find_nginx() { command -v nginx 2>/dev/null || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; } || true; }

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
[[ -n "$(find_nginx)" ]] || missing+=(nginx)
if ((${#missing[@]})); then
    sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    log "installing ${missing[*]} with apt-get"
    "${sudo[@]}" apt-get update
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y "${missing[@]}"
fi
NGINX=$(find_nginx)
[[ -n "$NGINX" ]] || die "nginx is not installed"
command -v wrk >/dev/null 2>&1 || die "wrk is not installed"
command -v python3 >/dev/null 2>&1 || die "python3 is needed to pick free ports"
command -v curl >/dev/null 2>&1 || die "curl is needed for the sanity checks"

command -v setsid >/dev/null 2>&1 || die "setsid (util-linux) is needed"

# --- processes, and stopping them -------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cutover-bench.XXXXXX")
DAEMON_PID=""
PROXY_PID=""
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

stop_proxy() {
    [[ -n "$PROXY_PID" ]] || return 0
    kill -QUIT "$PROXY_PID" 2>/dev/null || true # nginx: graceful shutdown
    wait_gone "$PROXY_PID" 10 || kill -KILL "$PROXY_PID" 2>/dev/null || true
    wait "$PROXY_PID" 2>/dev/null || true
    PROXY_PID=""
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
    local pidfile=$WORK/upstream-nginx/nginx.pid pid
    if [[ -s "$pidfile" ]] && pid=$(<"$pidfile") && kill -0 "$pid" 2>/dev/null; then
        log "upstream nginx $pid outlived the daemon; stopping it"
        kill -TERM "$pid" 2>/dev/null || true
    fi
}

cleanup() {
    local status=$?
    set +e
    if [[ -n "$CHILD" ]]; then
        kill -TERM -- -"$CHILD" 2>/dev/null
        wait "$CHILD" 2>/dev/null
    fi
    stop_proxy
    stop_daemon
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "building cutover (release)"
run_child cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
CUTOVER=$ROOT/target/release/cutover
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

# The part every nginx here shares: 1 worker, logs and temp files in its own dir,
# keep-alive connections never closed by a request count (hyper has no such limit).
nginx_common() {
    local dir=$1
    cat <<EOF
worker_processes 1;
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

# The static upstream, run by cutover as the app: `upstream-nginx.sh PORT VERSION`.
write_upstream_nginx() {
    local dir=$WORK/upstream-nginx
    mkdir -p "$dir"
    {
        nginx_common "$dir"
        echo 'http {'
        nginx_http_common "$dir"
        cat <<'EOF'
    server {
        listen 127.0.0.1:@PORT@;
        default_type text/plain;
        location / { return 200 "hello\n"; }
    }
}
EOF
    } >"$dir/nginx.conf.in"
    cat >"$WORK/upstream-nginx.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
sed "s/@PORT@/\$1/" "$dir/nginx.conf.in" >"$dir/nginx.conf"
echo "\$1" >"$WORK/upstream-port"
exec "$NGINX" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" -g 'daemon off;'
EOF
    chmod +x "$WORK/upstream-nginx.sh"
}

# cutover's own sample app, run by cutover as the app: `upstream-sample-app.sh PORT VERSION`.
write_upstream_sample_app() {
    cat >"$WORK/upstream-sample-app.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
echo "\$1" >"$WORK/upstream-port"
exec "$CUTOVER" sample-app --port "\$1" --version "\$2"
EOF
    chmod +x "$WORK/upstream-sample-app.sh"
}

write_cutover_config() {
    local kind=$1 port=$2 file=$3
    cat >"$file" <<EOF
app: bench
listen: 127.0.0.1:$port
state_dir: $WORK/state-$kind
platform:
  local:
    command: ["$WORK/upstream-$kind.sh", "\${PORT}", "\${VERSION}"]
    instances: 1
    startup_timeout: 15s
    drain_timeout: 1s
health:
  path: /healthz
  interval: 1s
EOF
}

# nginx as a reverse proxy to 127.0.0.1:$2, listening on $1, in the foreground.
start_nginx_proxy() {
    local port=$1 upstream_port=$2 dir=$WORK/proxy-nginx
    rm -rf "$dir" && mkdir -p "$dir"
    {
        nginx_common "$dir"
        echo 'http {'
        nginx_http_common "$dir"
        cat <<EOF
    upstream app {
        server 127.0.0.1:$upstream_port;
        keepalive 256;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    } >"$dir/nginx.conf"
    "$NGINX" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" -g 'daemon off;' \
        >"$dir/stdout.log" 2>&1 &
    PROXY_PID=$!
}

# --- measuring ----------------------------------------------------------------------

# A wrk latency ("812.00us", "1.23ms", "2.00s", "1.00m") in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.3f", n }'
}

RESULTS=() # "upstream|conns|path|rps|p50ms|p99ms|requests|non2xx|socket_errors"
RAW="$WORK/raw.txt"
: >"$RAW"

# measure UPSTREAM_KIND CONNS PATH URL
measure() {
    local kind=$1 conns=$2 path=$3 url=$4 out
    log "$kind, $conns connections, $path: warmup $WARMUP, then $DURATION"
    run_child timeout 30 wrk -t1 -c"$conns" -d"$WARMUP" "$url" >/dev/null
    run_child timeout 30 wrk -t1 -c"$conns" -d"$DURATION" --timeout 2s --latency "$url" >"$WORK/wrk.out"
    out=$(<"$WORK/wrk.out")
    printf '### %s upstream, %s connections, %s (%s)\n\n```\n%s\n```\n\n' \
        "$kind" "$conns" "$path" "$url" "$out" >>"$RAW"
    local rps p50 p99 requests non2xx sockerr
    rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    p50=$(awk '$1 == "50%" { print $2 }' <<<"$out")
    p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
    requests=$(awk '/ requests in / { print $1 }' <<<"$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' <<<"$out")
    sockerr=$(awk '/Socket errors:/ { gsub(",", ""); print $4 + $6 + $8 + $10 }' <<<"$out")
    [[ -n "$rps" && -n "$p50" && -n "$p99" ]] || die "cannot parse wrk output:
$out"
    RESULTS+=("$kind|$conns|$path|$rps|$(to_ms "$p50")|$(to_ms "$p99")|$requests|${non2xx:-0}|${sockerr:-0}")
    if [[ ${non2xx:-0} != 0 || ${sockerr:-0} != 0 ]]; then
        log "  !! $path: ${non2xx:-0} non-2xx responses, ${sockerr:-0} socket errors"
    fi
}

# --- 2 and 3. the runs ----------------------------------------------------------------

write_upstream_nginx
write_upstream_sample_app
PROXY_COUNTERS=()

warn_if_busy

for kind in "${UPSTREAMS[@]}"; do
    log "=== upstream: $kind"
    rm -f "$WORK/upstream-port"
    cutover_port=$(free_port)
    config=$WORK/cutover-$kind.yaml
    write_cutover_config "$kind" "$cutover_port" "$config"
    "$CUTOVER" validate -f "$config" >/dev/null

    "$CUTOVER" serve -f "$config" >"$WORK/serve-$kind.log" 2>&1 &
    DAEMON_PID=$!
    for _ in $(seq 100); do
        [[ -s "$WORK/state-$kind/daemon.json" ]] && break
        kill -0 "$DAEMON_PID" 2>/dev/null || die "cutover serve exited: $(cat "$WORK/serve-$kind.log")"
        sleep 0.1
    done
    [[ -s "$WORK/state-$kind/daemon.json" ]] || die "cutover serve wrote no daemon.json in 10s"
    run_child timeout 60 "$CUTOVER" deploy v1 -f "$config" >"$WORK/deploy-$kind.log" 2>&1 ||
        die "cutover deploy v1 failed: $(cat "$WORK/deploy-$kind.log")"
    [[ -s "$WORK/upstream-port" ]] || die "the upstream did not write down its port"
    upstream_port=$(<"$WORK/upstream-port")

    proxy_port=$(free_port)
    start_nginx_proxy "$proxy_port" "$upstream_port"

    want="hello"
    [[ $kind == sample-app ]] && want="hello from v1"
    declare -A url=(
        [direct]="http://127.0.0.1:$upstream_port/"
        [nginx]="http://127.0.0.1:$proxy_port/"
        [cutover]="http://127.0.0.1:$cutover_port/"
    )
    for path in "${PATHS[@]}"; do wait_http "${url[$path]}" "$want" 10; done
    curl -fsSi --max-time 1 "${url[cutover]}" | grep -qi '^x-cutover-version: v1' ||
        die "cutover's proxy did not say it served v1"

    for conns in "${CONNECTIONS[@]}"; do
        for path in "${PATHS[@]}"; do
            measure "$kind" "$conns" "$path" "${url[$path]}"
        done
    done

    # The proxy's own counters, as a cross-check of wrk's (they include the warmups).
    status=$("$CUTOVER" status --json -f "$config")
    PROXY_COUNTERS+=("$kind: $(python3 -c 'import json,sys
s = json.load(sys.stdin)
print(", ".join("%s: %s requests, %s 5xx" % (t["version"], t["requests"], t["errors_5xx"]) for t in s["traffic"]) or "no traffic")' <<<"$status")")

    stop_proxy
    stop_daemon
    unset url
done

# --- 4. the table ------------------------------------------------------------------

table() {
    printf '| upstream | conns | path | requests/s | p50 ms | p99 ms | non-2xx | socket errors | ÷ direct | cutover ÷ nginx |\n'
    printf '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|\n'
    printf '%s\n' "${RESULTS[@]}" | awk -F'|' '
        { key = $1 "|" $2; rps[key, $3] = $4; row[NR] = $0 }
        END {
            for (i = 1; i <= NR; i++) {
                split(row[i], f, "|"); key = f[1] "|" f[2]
                vs_direct = (f[3] == "direct") ? "1.00" : sprintf("%.2f", f[4] / rps[key, "direct"])
                vs_nginx = (f[3] == "cutover") ? sprintf("**%.2f**", f[4] / rps[key, "nginx"]) : ""
                printf "| %s | %s | %s | %.0f | %.3f | %.3f | %s | %s | %s | %s |\n",
                    f[1], f[2], f[3], f[4], f[5], f[6], f[8], f[9], vs_direct, vs_nginx
            }
        }'
}

BUSY_AFTER=$(cpu_busy_percent)
TABLE=$(table)
printf '\n%s\n\n' "$TABLE"
printf "cutover proxy's own counters (warmups included):\n"
printf '  %s\n' "${PROXY_COUNTERS[@]}"

mkdir -p "$ROOT/bench/results"
STAMP=$(date +%Y-%m-%d-%H%M%S)
OUT=$ROOT/bench/results/proxy-$STAMP.md
commit=$(git -C "$ROOT" --no-optional-locks rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ $commit != unknown && -n $(git -C "$ROOT" --no-optional-locks status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    commit="$commit (with uncommitted changes)"
fi
{
    printf '# cutover proxy vs nginx, %s\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf 'Command: `bash bench/proxy.sh`; cutover %s.\n\n' "$commit"
    printf 'wrk -t1, %s warmup then %s measured per row, one row after another; ' "$WARMUP" "$DURATION"
    printf 'all on 127.0.0.1. nginx proxy and static upstream: 1 worker process each. '
    printf "Every path of an upstream kind reaches the same upstream process (the one cutover started).\n\n"
    printf '%s\n\n' "$TABLE"
    printf "cutover proxy's own counters (warmups included):\n\n"
    printf -- '- %s\n' "${PROXY_COUNTERS[@]}"
    printf '\nCPU use by other work, over 1 s before the runs: %s%%; after them: %s%%.\n' "$BUSY_BEFORE" "$BUSY_AFTER"
    printf '\nMachine: %s cores (%s), %s; %s; %s.\n\n' "$(nproc)" \
        "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" "$(uname -sr)" \
        "$("$NGINX" -v 2>&1)" "$(wrk -v 2>&1 | head -1 | awk '{ print $1, $2 }')"
    printf '## Raw wrk output\n\n'
    cat "$RAW"
} >"$OUT"
log "written to ${OUT#"$ROOT"/}"

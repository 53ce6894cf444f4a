# Shared by the benchmarks in bench/: sourced, never run on its own.

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# A port free on 127.0.0.1 now (not reserved: the caller binds it soon after).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Anything else running skews the numbers: how busy the CPUs are over a second
# (nothing of ours is busy when this is called), as a whole percentage.
cpu_busy_percent() {
    local a b
    a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat)
    sleep 1
    b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ")
        busy = y[1] - x[1]; idle = y[2] - x[2]
        printf "%.0f", (busy + idle > 0) ? 100 * busy / (busy + idle) : 0 }'
}

# Warns when the machine was busy before the runs; sets BUSY_BEFORE for the results.
warn_if_busy() {
    BUSY_BEFORE=$(cpu_busy_percent)
    if ((BUSY_BEFORE > 10)); then
        log "warning: the CPUs were ${BUSY_BEFORE}% busy before the runs; other work on this machine skews the numbers"
    fi
}

//! The commented `cutover.yaml` that `cutover init` writes.

/// A starter `cutover.yaml`: every option with its default and a one-line comment.
/// Only `app` and `platform.local.command` are placeholders to edit. It parses, and
/// parses to the same [`crate::Config`] as a file with just those two set.
pub const STARTER: &str = r#"# cutover.yaml: how cutover runs your app and rolls out new versions.
# Every option is shown with its default; only `app` and `command` are required.
# Durations look like 500ms, 30s, 2m or 1h; percentages like 10% or 0.5%.

# The app's name: 1-63 characters of a-z, 0-9 and -, starting with a letter.
app: my-app
# Where the built-in proxy listens for traffic (an IP address and port).
listen: 127.0.0.1:8080
# Where cutover keeps its state and receipts, relative to this file.
state_dir: .cutover

# Where versions run: `local` (child processes on this machine) or `docker`.
platform:
  local:
    # The argv to run, no shell; ${PORT} is the port to listen on, ${VERSION} the version.
    command: ["./server", "--port", "${PORT}"]
    # Extra environment variables, e.g. { GREETING: "hi from ${VERSION}" }.
    env: {}
    # Working directory, relative to this file.
    workdir: .
    # Processes per version, round-robin behind the proxy (1 to 64).
    instances: 1
    # How long a new version may take to become healthy.
    startup_timeout: 30s
    # How long in-flight requests may take to finish before a version is stopped.
    drain_timeout: 10s
  # Or `docker` in place of `local`, to run each version as containers through the
  # Docker Engine API, with the settings `image` (required: a tag with ${VERSION},
  # or a digest), `command`, `env`, `network` (host, or published with `port`),
  # `memory`, `cpus`, `instances`, `startup_timeout`, `drain_timeout`, `stop_grace`
  # (10s), `pull` (missing, always or never), `healthcheck` (http, or image for the
  # image's HEALTHCHECK) and `host` (default $DOCKER_HOST, else the socket
  # /var/run/docker.sock); the README's configuration reference shows them all.

# The HTTP health check run against every instance.
health:
  # Request path, starting with /.
  path: /healthz
  # Time between checks.
  interval: 1s
  # How long one check may take.
  timeout: 1s
  # Consecutive successes before an instance is ready.
  healthy_threshold: 1
  # Consecutive failures before a serving instance is unhealthy.
  unhealthy_threshold: 3

# How traffic moves to a new version: exactly one of `canary` (below), `blue_green` or
# `rolling` (commented out after it). To switch, delete `canary:` and its settings and
# uncomment one of the others.
strategy:
  # Canary: shift traffic to the new version step by step, analysing at each step.
  canary:
    # Share of traffic for the new version at each step (never decreasing), and how
    # long to stay there analysing: a duration, or until-promoted (`cutover promote`).
    steps:
      - weight: 10%
        pause: 30s
        # mirror: 20%       # also copy this share of the stable's requests to the new
        #                   # version, answers discarded (GET, HEAD, OPTIONS); with
        #                   # `weight: 0%` it is judged on those copies alone
      - weight: 50%
        pause: 30s
      - weight: 100%
        pause: 30s
    # What the new version is judged against: `stable` (the stable version's instances)
    # or `fresh` (a fresh instance of the stable version, given the same share of traffic).
    baseline: stable
    # Keep each client on the version it was first sent to: `cookie`, or `none`.
    sticky: none
  # Blue-green: start the new version beside the old, check it, then switch all traffic.
  # blue_green:
  #   # Switch as soon as the checks pass; `false` waits for `cutover promote`.
  #   auto_promote: true
  #   # An extra address where every request goes to the new version, to try it before
  #   # the switch (default: none).
  #   # preview_listen: 127.0.0.1:8081
  #   # Requests run against the new version before the switch; all must pass (default:
  #   # none). Each has a `path` (required), a `method` (GET, HEAD, POST, PUT, PATCH,
  #   # DELETE or OPTIONS), `headers`, the `status` it must get (100 to 599), and
  #   # optionally text the body must contain and the longest it may take.
  #   smoke_checks:
  #     # - path: /ready
  #     #   method: GET
  #     #   headers: {}
  #     #   status: 200
  #     #   body_contains: ok
  #     #   max_latency: 500ms
  #   # How long the new version's own numbers on preview traffic are analysed before
  #   # the switch, against the `max` limits in `analysis.metrics` (default: none).
  #   # preview_analysis: 1m
  #   # How long the old version keeps running after the switch, for an instant rollback.
  #   scale_down_delay: 30s
  # Rolling: replace instances in batches, analysing the new ones after each batch.
  # rolling:
  #   # Instances that may run beyond `instances` meanwhile: a number, or a percentage of
  #   # `instances` (rounded up).
  #   max_surge: 1
  #   # Instances that may be out of service meanwhile: a number, or a percentage of
  #   # `instances` (rounded down). Not both this and max_surge may come to 0.
  #   max_unavailable: 0
  #   # How long the new instances are analysed after each batch before the next.
  #   pause: 10s

# How the new version is judged against the stable one.
analysis:
  # Length of one analysis window.
  interval: 5s
  # Requests the new version must serve in a window before it is judged.
  min_requests: 20
  # Windows failing a limit (below) that trigger a rollback.
  failure_limit: 2
  # Windows in a row without enough data before giving up and rolling back.
  inconclusive_limit: 6
  # What a window is judged on; at least one metric.
  metrics:
    # Share of 5xx responses: at most `max`, and/or at most the stable's plus `max_over_stable`.
    error_rate:
      max: 5%
      # max_over_stable: 1%
    # Latency quantiles: at most `max`, and/or at most the stable's times `max_ratio`.
    # latency_p50: { max: 200ms, max_ratio: 1.5 }
    # latency_p95: { max: 300ms }
    # latency_p99: { max: 500ms, max_ratio: 2 }
    # Apdex: satisfied within `threshold`, tolerating within 4x it; at least `min`.
    # apdex: { threshold: 100ms, min: 0.9 }
  # Anytime-valid tests after every window: a canary worse than its baseline in
  # errors, or in the share of requests slower than the baseline's
  # `latency_quantile`, is rolled back as soon as the evidence is there. A canary
  # as good as the baseline is rolled back by them with a chance of at most
  # `alpha` over the whole run, however long it runs. `false` turns them off.
  sequential:
    alpha: 1%
    errors: true
    latency_quantile: 95%
  # At the end of each step, the step's latencies are compared by the Mann-Whitney
  # U test: the step fails if the canary's are higher than the baseline's plus
  # `tolerance`, with this confidence. `false` turns it off.
  comparison:
    confidence: 99%
    tolerance: 10%
    min_samples: 50
  # Each step, the canary's error-level log lines (ERROR, FATAL, panics,
  # `level=error`, JSON `"level":"error"`) are grouped into templates; one the
  # baseline never logged, or logs `rate_factor` times less often per request, is
  # a finding once the canary logged it `min_count` times. `new_errors` says what a
  # finding does: `fail` the window, `warn` (recorded, the window passes) or `off`
  # (listed in the receipts only). `false` turns the log check off.
  logs:
    new_errors: warn
    rate_factor: 3
    min_count: 3

  # Where the windows' numbers come from: the proxy's own (`builtin`, exact), or
  # Prometheus, a JSON web endpoint, a command or Datadog, like
  #   `source: { prometheus: { url: "${env:PROMETHEUS_URL}" } }`
  # (see "Metric sources" in the README). Those have no latency histograms: set
  # `comparison: false` and `latency_quantile: false` above with them.
  source: builtin

# Each instance's output (stdout and stderr) goes to a file of its own under
# `<state_dir>/logs/<run>/`, rotated once it is past `max_size` (B, KiB, MiB, GiB;
# at least 4KiB); `keep` older files are kept beside it (`.1` the newest).
logs:
  max_size: 10MiB
  keep: 3

# Limits of the built-in proxy, against clients that would wear it or the instances
# behind it out; none of its answers counts against a version. Taken up when the
# daemon starts (a change needs a restart). Sizes are bytes (65536) or with a unit:
# B, KiB, MiB or GiB.
proxy:
  # The largest request head (request line and headers); beyond it, 431. 1KiB to 1MiB.
  max_header_size: 64KiB
  # How long a request head may take to arrive; then 408 and the connection is closed.
  header_read_timeout: 10s
  # How long a client connection may idle between requests before it is closed.
  idle_timeout: 60s
  # How long an upgraded connection (a WebSocket) may pass no byte either way before
  # it is closed (`none`: no limit).
  tunnel_idle_timeout: 1h
  # Client connections served at once; one more is answered 503 and closed (0: no limit).
  max_connections: 10000
  # Requests in flight to one instance; beyond it the version's other instances are
  # tried, then 503 (0: no limit).
  max_requests_per_instance: 0
  # The largest request body; beyond it, 413 (`none`: no limit).
  max_body_size: none
  # Threads of its own to serve on, a connection staying on one: thread per core
  # when set to the number of cores (0: on the daemon's runtime; up to 256).
  threads: 0

# Who may use the daemon's HTTP API. Requests that change something always need the
# token the daemon writes to `<state_dir>/token` (`Authorization: Bearer <token>`;
# the CLI sends it). Taken up when the daemon starts (a change needs a restart).
api:
  # Reads need the token too; `false` leaves them open on a loopback address.
  read_auth: false
  # Let an API listening beyond loopback keep its reads open (else it refuses to start
  # without `read_auth: true`).
  allow_remote_open_reads: false

# Quality gates, all run at once before a deploy starts: commands (argv, no shell)
# that must exit 0 within their timeout (default 10m), each maybe with a report it
# writes and the limits it must meet: junit (min_tests, allow_flaky), lcov or
# cobertura (min_coverage), cargo_audit or npm_audit (severity: low to critical),
# sarif (severity: note, warning or error), gitleaks (any leak fails).
# gates:
#   - { name: tests, run: [cargo, test] }
#   - { name: audit, run: [cargo, audit, --json], report: { cargo_audit: stdout, severity: high } }

# Smoke tests, run against an environment before production traffic moves: HTTP
# checks (like blue_green's smoke_checks, plus `json: { "field.path": value }`), and
# commands that get the environment's URL in CUTOVER_URL and its name in CUTOVER_ENV.
# smoke:
#   - { path: /healthz, status: 200 }
#   - { name: suite, run: [npm, run, "test:smoke"], timeout: 5m }

# Optional: the places a version goes through, in order, each with a daemon of its own
# (`cutover serve --env staging`). Each entry is laid over the settings in this file
# (mappings merge key by key; a key set to nothing takes its default). A deploy to
# production (`--env`, default the last) first deploys to staging and smoke tests it.
# `skip_on_hotfix`: a `--type hotfix` deploy goes straight past it. The last one keeps
# `state_dir`; the others get `<state_dir>/<name>`.
# environments:
#   staging: { listen: "127.0.0.1:9080", strategy: { rolling: {} }, approvals: null, skip_on_hotfix: true }
#   production:

# Optional: people who must approve a deploy before anything starts (`cutover approve
# --as NAME`; `cutover reject --as NAME --comment "..."` blocks it).
# approvals:
#   required: 2                 # distinct approvals, at most the number in `from`
#   from: [alice, bob, carol]   # who may decide; anyone else is refused
#   timeout: 24h                # no quorum by then: the run is aborted
#   hotfix: { required: 1, from: [oncall] }   # for `cutover deploy --type hotfix`

# Optional: when deploys may move traffic, in a named time zone; outside, a deploy is
# refused unless `--override-window --reason "..."`.
# windows:
#   timezone: Europe/Berlin
#   allow:
#     - { days: [mon-thu], hours: "09:00-17:00" }
#   freezes:
#     - { from: 2026-12-20, until: 2027-01-04, reason: year-end freeze }
# Commands run around a rollout, each `{ run: [argv], timeout, workdir }` (no shell
# unless you write ["sh", "-c", "..."]). They get the run's facts in CUTOVER_APP,
# CUTOVER_VERSION, CUTOVER_PREVIOUS_VERSION, CUTOVER_RUN_ID, CUTOVER_OUTCOME,
# CUTOVER_REASON, CUTOVER_RECEIPTS_DIR and CUTOVER_STAGE. None by default.
# hooks:
#   before_deploy:              # a failure blocks the run before anything starts
#     - { run: ["./scripts/check-release.sh"], timeout: 5m }
#   after_promotion:            # a failure is reported, the version stays
#     - { run: ["./scripts/announce.sh"], timeout: 1m, workdir: . }
#   on_rollback:                # the rollback script; a failure is reported
#     - { run: ["sh", "-c", "./scripts/rollback.sh \"$CUTOVER_REASON\""] }

# The database migration the new version needs, run before traffic moves. None by default.
# migrations:
#   up: { run: ["npm", "run", "migrate:up"], timeout: 10m }
#   down: { run: ["npm", "run", "migrate:down"], timeout: 10m }
#   reversible: false           # true: `down` runs on rollback (needs `down`)
#   # A gate: up, down and up again against this scratch database (needs `down`),
#   # passed to the commands as DATABASE_URL.
#   validate: { database_url: "postgresql://127.0.0.1:5432/scratch" }

# Who is told what happened. None by default.
# notifications:
#   webhooks:
#     - url: http://127.0.0.1:9000/hook   # http only: this build has no TLS
#       format: json            # or `slack`: a Slack-compatible body (text and blocks)
#       events: [run_started, stage_finished, waiting_for_approval, promoted, rolled_back]
#       secret_env: HOOK_SECRET # or `secret: ...`: signs the body (X-Cutover-Signature)
#   # A GitHub deployment per run, with its statuses; `environment` defaults to
#   # production, `api_url` to https://api.github.com, which needs TLS.
#   github: { repository: acme/shop, token_env: GITHUB_TOKEN, api_url: "http://127.0.0.1:9001" }
"#;

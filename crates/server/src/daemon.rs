//! Starting, running and stopping the daemon.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cutover_engine::platform::Platform;
use cutover_engine::{Engine, EngineParts, PlatformFactory, RunConfig};
use cutover_platform::{DockerPlatform, Leftovers, LocalPlatform, LogFiles};
use cutover_proxy::Proxy;
use cutover_spec::{ApiSpec, Config, PlatformSpec};
use cutover_store::Store;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::api;
use crate::auth::{Guard, Token, TokenError};
use crate::config::{ConfigSource, preview_listen, proxy_options};
use crate::environments::DaemonEnvironments;
use crate::metrics::StepDurations;
use crate::streams::AllEvents;
use crate::traffic::ProxyTraffic;

/// Why the daemon could not start. Nothing is left running when it fails.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The state directory could not be created or locked.
    #[error("could not use the state directory {path}")]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Another daemon already serves this state directory.
    #[error("another cutover daemon already serves {state_dir}{}", describe(.other))]
    AlreadyRunning {
        state_dir: PathBuf,
        other: Option<DaemonInfo>,
    },
    /// The API would listen beyond loopback with reads open to anyone who can reach it.
    #[error(
        "the API would listen on {addr}, beyond loopback, where anyone who reaches it could \
         read the app's runs; set `api: {{ read_auth: true }}` in the config so reads need \
         the token too, or `api: {{ allow_remote_open_reads: true }}` to keep them open, or \
         listen on 127.0.0.1"
    )]
    OpenReadsBeyondLoopback { addr: SocketAddr },
    /// The API token could not be made or read.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// Signal handlers could not be installed.
    #[error("could not install the SIGTERM/SIGINT handlers")]
    Signals(#[source] std::io::Error),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] cutover_store::StoreError),
    /// The proxy could not listen.
    #[error(transparent)]
    Proxy(#[from] cutover_proxy::ProxyError),
    /// The API could not listen.
    #[error("the API could not listen on {addr}")]
    Api {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// Settling the previous daemon's runs failed.
    #[error("could not recover the previous daemon's state")]
    Recover(#[from] cutover_engine::EngineError),
    /// daemon.json could not be written.
    #[error("could not write {path}")]
    Info {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Stops what an earlier daemon left running and was not adopted, and says so.
async fn stop_unadopted(platform: &dyn Platform) {
    let stopped = platform.stop_unadopted().await;
    if !stopped.is_empty() {
        warn!(stopped = ?stopped, "stopped what an earlier daemon left running");
    }
}

impl ServeError {
    /// The daemon's settings are at fault, not the machine: nothing was started.
    pub fn is_config_error(&self) -> bool {
        matches!(self, ServeError::OpenReadsBeyondLoopback { .. })
    }
}

/// Whether the API may listen on `addr`: beyond loopback it must not leave its reads
/// open, unless told it may.
fn may_listen_on(addr: SocketAddr, spec: &ApiSpec) -> bool {
    addr.ip().is_loopback() || spec.read_auth || spec.allow_remote_open_reads
}

fn describe(other: &Option<DaemonInfo>) -> String {
    other.as_ref().map_or(String::new(), |o| {
        format!(
            " (pid {}, API http://{}, proxy http://{})",
            o.pid, o.api, o.proxy
        )
    })
}

/// What `<state>/daemon.json` says: how clients find a running daemon.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaemonInfo {
    pub app: String,
    pub pid: u32,
    /// The API, `http://<api>/api/v1/...`.
    pub api: SocketAddr,
    /// Where the app's users send their requests.
    pub proxy: SocketAddr,
    /// Blue-green's preview address, where every request goes to the new version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<SocketAddr>,
}

impl DaemonInfo {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("daemon.json")
    }

    /// Writes it to `path` atomically (a temp file renamed over it), so a client
    /// never reads half of it.
    fn write(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        let temp = path.with_extension("json.tmp");
        std::fs::write(&temp, json)?;
        std::fs::rename(&temp, path)
    }

    /// The info of the daemon serving `state_dir`, if one wrote it.
    pub fn read(state_dir: &Path) -> Option<DaemonInfo> {
        let text = std::fs::read_to_string(Self::path(state_dir)).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// Local processes or Docker containers, as each run's config says, their output
/// in the folder of the run that started them.
struct Platforms {
    state_dir: PathBuf,
    logs: LogFiles,
}

impl Platforms {
    /// The platform `config` names for `run` (none: the daemon's own, restarting
    /// the stable version); a local one takes over `leftovers`.
    fn make(&self, config: &Config, run: Option<&str>, leftovers: Leftovers) -> Arc<dyn Platform> {
        let health = config.health.clone();
        let logs = self.logs.run_dir(run);
        match &config.platform {
            PlatformSpec::Local(local) => {
                Arc::new(LocalPlatform::new(local.clone(), health, logs).with_leftovers(leftovers))
            }
            PlatformSpec::Docker(docker) => {
                let platform =
                    DockerPlatform::new(docker.clone(), health, &config.app, &self.state_dir)
                        .with_logs(logs, config.logs);
                Arc::new(match run {
                    Some(run) => platform.with_run(run),
                    None => platform,
                })
            }
        }
    }
}

impl PlatformFactory for Platforms {
    fn platform(&self, config: &Config) -> Arc<dyn Platform> {
        self.make(config, None, Leftovers::default())
    }

    fn platform_for_run(&self, config: &Config, run_id: &str) -> Arc<dyn Platform> {
        self.make(config, Some(run_id), Leftovers::default())
    }
}

/// How long open API connections get to finish when the daemon stops.
const API_CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// A running daemon.
pub struct Daemon {
    engine: Engine,
    traffic: Arc<ProxyTraffic>,
    info: DaemonInfo,
    state_dir: PathBuf,
    stop_api: watch::Sender<bool>,
    api_task: tokio::task::JoinHandle<()>,
    /// Taken by [`Daemon::run_until_signal`].
    signals: Option<Signals>,
    /// Held for the daemon's lifetime: one daemon per state directory.
    _lock: File,
}

struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

impl Daemon {
    /// Checks that the API may listen on `api` (beyond loopback only when reads need
    /// the token, or `api.allow_remote_open_reads` says so), locks the state
    /// directory, makes or reads its API token, opens the store, starts the proxy on
    /// `config.listen` and the API on `api`, takes over what an earlier daemon left
    /// (adopting the instances still running, resuming its unfinished run),
    /// stops whatever else that daemon left running if it died abruptly, and
    /// writes `daemon.json`.
    ///
    /// # Errors
    /// See [`ServeError`]; on error nothing is left listening or running.
    pub async fn start(run_config: RunConfig, api: SocketAddr) -> Result<Daemon, ServeError> {
        let config = run_config.config.clone();
        if !may_listen_on(api, &config.api) {
            return Err(ServeError::OpenReadsBeyondLoopback { addr: api });
        }
        let state_dir = config.state_dir.clone();
        let dir_error = |source| ServeError::StateDir {
            path: state_dir.clone(),
            source,
        };
        std::fs::create_dir_all(&state_dir).map_err(dir_error)?;
        let lock = File::create(state_dir.join("daemon.lock")).map_err(dir_error)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(ServeError::AlreadyRunning {
                    other: DaemonInfo::read(&state_dir),
                    state_dir,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(dir_error(e)),
        }
        let guard = Guard::new(
            Token::load_or_create(&state_dir)?,
            config.api.read_auth,
            &state_dir,
        );
        // Before anything is started, so a signal during recovery is handled in order.
        let signals = Signals::install().map_err(ServeError::Signals)?;
        cutover_platform::install_panic_hook();
        // Read before this daemon records its own children over it: what the earlier
        // one left running is adopted or stopped once the engine has recovered.
        let children = state_dir.join("children.json");
        let leftovers = match Leftovers::read(&children) {
            Ok(leftovers) => leftovers,
            Err(e) => {
                warn!(error = %e, file = %children.display(), "could not check for processes an earlier daemon left running");
                Leftovers::default()
            }
        };
        if !leftovers.is_empty() {
            info!(
                groups = leftovers.len(),
                "an earlier daemon left processes running"
            );
        }
        if let Err(e) = cutover_platform::persist_children_to(children.clone()) {
            warn!(error = %e, file = %children.display(), "could not record child processes; a crash could leave some running");
        }
        // Processes left by a daemon that ran them, before the config said docker:
        // nothing will adopt them.
        let leftovers = match &config.platform {
            PlatformSpec::Local(_) => leftovers,
            PlatformSpec::Docker(_) => {
                let stopped = leftovers.stop().await;
                if !stopped.is_empty() {
                    warn!(stopped = ?stopped, "stopped processes an earlier daemon left running; versions run as containers now");
                }
                Leftovers::default()
            }
        };
        let log_files = LogFiles::new(state_dir.join("logs"));
        let platforms = Arc::new(Platforms {
            state_dir: state_dir.clone(),
            logs: log_files.clone(),
        });
        let platform = platforms.make(&config, None, leftovers);

        let store = match Store::open(&state_dir.join("cutover.db")) {
            Ok(store) => Arc::new(store),
            Err(e) => {
                stop_unadopted(&*platform).await;
                return Err(e.into());
            }
        };
        // Closed until recovery restored the routes: a client that connects in
        // between waits for its answer rather than getting a 503.
        let options = proxy_options(&config.proxy);
        let proxy = match Proxy::bind_closed(config.listen, options).await {
            Ok(proxy) => proxy,
            Err(e) => {
                stop_unadopted(&*platform).await;
                return Err(e.into());
            }
        };
        let preview = match preview_listen(&config) {
            Some(addr) => match Proxy::bind_closed(addr, options).await {
                Ok(preview) => Some(preview),
                Err(e) => {
                    proxy.shutdown().await;
                    stop_unadopted(&*platform).await;
                    return Err(e.into());
                }
            },
            None => None,
        };
        let traffic = Arc::new(ProxyTraffic::new(proxy.clone(), preview));
        let listener = match TcpListener::bind(api).await {
            Ok(l) => l,
            Err(source) => {
                shut_down_proxies(&traffic).await;
                stop_unadopted(&*platform).await;
                return Err(ServeError::Api { addr: api, source });
            }
        };
        let api_addr = match listener.local_addr() {
            Ok(addr) => addr,
            Err(source) => {
                shut_down_proxies(&traffic).await;
                stop_unadopted(&*platform).await;
                return Err(ServeError::Api { addr: api, source });
            }
        };
        let config_source = Arc::new(ConfigSource::new(&run_config));
        let engine = Engine::new(EngineParts {
            config: run_config,
            store,
            platforms,
            platform: platform.clone(),
            traffic: traffic.clone(),
            metrics: Arc::new(cutover_metrics::Sources::new(traffic.clone())),
            logs: Arc::new(log_files.clone()),
            prober: traffic.clone(),
            environments: Arc::new(DaemonEnvironments::new(&state_dir)),
            runs_dir: state_dir.join("runs"),
        });
        if let Err(e) = engine.recover().await {
            // What recovery did not get to adopt is stopped all the same.
            stop_unadopted(&*platform).await;
            engine.stop_serving().await;
            shut_down_proxies(&traffic).await;
            return Err(e.into());
        }
        // Routes restored: clients are answered from here on.
        proxy.open();
        if let Some(preview) = traffic.preview() {
            preview.open();
        }
        let info = DaemonInfo {
            app: config.app.clone(),
            pid: std::process::id(),
            api: api_addr,
            proxy: proxy.local_addr(),
            preview: traffic.preview().map(Proxy::local_addr),
        };
        let path = DaemonInfo::path(&state_dir);
        if let Err(source) = info.write(&path) {
            // A resumed run stops first, so it starts nothing after this.
            engine.shutdown().await;
            engine.stop_serving().await;
            shut_down_proxies(&traffic).await;
            return Err(ServeError::Info { path, source });
        }
        let (stop_api, mut stopped) = watch::channel(false);
        crate::logs::spawn_rotation(engine.clone(), log_files.clone(), stop_api.subscribe());
        let steps = Arc::new(StepDurations::default());
        steps.clone().collect(AllEvents::new(
            engine.clone(),
            info.app.clone(),
            stop_api.subscribe(),
        ));
        let router = api::router(
            api::AppState {
                engine: engine.clone(),
                traffic: traffic.clone(),
                info: info.clone(),
                config: config_source,
                runs_dir: state_dir.join("runs"),
                steps,
                stopping: stop_api.subscribe(),
                logs: log_files,
            },
            guard,
        );
        let api_task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
            {
                warn!(error = %e, "the API server stopped");
            }
        });
        info!(app = %info.app, api = %info.api, proxy = %info.proxy, state = %state_dir.display(), "daemon ready");
        Ok(Daemon {
            engine,
            traffic,
            info,
            state_dir,
            stop_api,
            api_task,
            signals: Some(signals),
            _lock: lock,
        })
    }

    pub fn api_addr(&self) -> SocketAddr {
        self.info.api
    }

    pub fn proxy_addr(&self) -> SocketAddr {
        self.info.proxy
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Serves until SIGTERM or SIGINT, then shuts down in order. A second signal
    /// during the shutdown stops every child process at once and exits.
    pub async fn run_until_signal(mut self) {
        let Some(mut signals) = self.signals.take() else {
            return self.shutdown().await;
        };
        let first = signals.recv().await;
        info!(
            signal = first,
            "shutting down (signal again to stop at once)"
        );
        tokio::select! {
            () = self.shutdown() => {}
            second = signals.recv() => {
                warn!(signal = second, "second signal: stopping every child process now");
                cutover_platform::kill_all_children();
                std::process::exit(130);
            }
        }
    }

    /// Stops in an order that keeps the app serving to the end: no new run is
    /// accepted and the active one is aborted (its clients get their final event),
    /// then the API closes, then the proxy stops accepting and finishes its
    /// in-flight requests, then every version is drained and stopped, and
    /// `daemon.json` is removed.
    ///
    /// # Guarantees
    /// No child process of the daemon is left running when it returns.
    pub async fn shutdown(self) {
        self.engine.shutdown().await;
        let _ = self.stop_api.send(true);
        // Every run has ended, so every event stream has too; a client that keeps
        // some other request open does not get to hold the shutdown hostage.
        let mut api_task = self.api_task;
        if tokio::time::timeout(API_CLOSE_GRACE, &mut api_task)
            .await
            .is_err()
        {
            warn!("the API did not close within {API_CLOSE_GRACE:?}; closing it now");
            api_task.abort();
        }
        self.traffic.proxy().shutdown().await;
        if let Some(preview) = self.traffic.preview() {
            preview.shutdown().await;
        }
        self.engine.stop_serving().await;
        // Belt and braces: anything that could not be stopped in order.
        cutover_platform::kill_all_children();
        let _ = std::fs::remove_file(DaemonInfo::path(&self.state_dir));
        info!("daemon stopped");
    }
}

/// Stops the proxy and blue-green's preview proxy, if there is one, when the
/// daemon gives up starting.
async fn shut_down_proxies(traffic: &ProxyTraffic) {
    traffic.proxy().shutdown().await;
    if let Some(preview) = traffic.preview() {
        preview.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_beyond_loopback_needs_read_auth_or_the_opt_out() {
        let open = ApiSpec::default();
        let addr = |a: &str| a.parse::<SocketAddr>().unwrap();
        for loopback in ["127.0.0.1:0", "127.0.0.2:9000", "[::1]:0"] {
            assert!(may_listen_on(addr(loopback), &open), "{loopback}");
        }
        let read_auth = ApiSpec {
            read_auth: true,
            ..open
        };
        let opted_out = ApiSpec {
            allow_remote_open_reads: true,
            ..open
        };
        for beyond in ["0.0.0.0:0", "[::]:0", "192.168.1.4:9000"] {
            assert!(!may_listen_on(addr(beyond), &open), "{beyond}");
            assert!(may_listen_on(addr(beyond), &read_auth), "{beyond}");
            assert!(may_listen_on(addr(beyond), &opted_out), "{beyond}");
        }
        let refusal = ServeError::OpenReadsBeyondLoopback {
            addr: addr("0.0.0.0:0"),
        };
        assert!(refusal.is_config_error());
        assert!(refusal.to_string().contains("read_auth: true"), "{refusal}");
    }
}

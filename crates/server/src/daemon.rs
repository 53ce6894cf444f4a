//! Starting, running and stopping the daemon.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cutover_engine::Engine;
use cutover_platform::LocalPlatform;
use cutover_proxy::{Proxy, ProxyOptions};
use cutover_spec::Config;
use cutover_store::Store;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::api;
use crate::traffic::ProxyTraffic;

/// Why the daemon could not start. Nothing is left running when it fails.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The state directory could not be created.
    #[error("could not create the state directory {path}")]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Another daemon already serves this state directory.
    #[error(
        "another cutover daemon (pid {pid}) already serves {state_dir}; its API is http://{api}"
    )]
    AlreadyRunning {
        pid: u32,
        api: SocketAddr,
        state_dir: PathBuf,
    },
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

/// What `<state>/daemon.json` says: how clients find a running daemon.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaemonInfo {
    pub app: String,
    pub pid: u32,
    /// The API, `http://<api>/api/v1/...`.
    pub api: SocketAddr,
    /// Where the app's users send their requests.
    pub proxy: SocketAddr,
}

impl DaemonInfo {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("daemon.json")
    }

    /// The info of the daemon serving `state_dir`, if one wrote it.
    pub fn read(state_dir: &Path) -> Option<DaemonInfo> {
        let text = std::fs::read_to_string(Self::path(state_dir)).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// A running daemon.
pub struct Daemon {
    engine: Engine,
    traffic: Arc<ProxyTraffic>,
    info: DaemonInfo,
    state_dir: PathBuf,
    stop_api: watch::Sender<bool>,
    api_task: tokio::task::JoinHandle<()>,
}

impl Daemon {
    /// Opens the store, starts the proxy on `config.listen` and the API on `api`,
    /// restores the stable version a previous daemon was serving, and writes
    /// `daemon.json`.
    ///
    /// # Errors
    /// See [`ServeError`]; on error nothing is left listening or running.
    pub async fn start(config: Config, api: SocketAddr) -> Result<Daemon, ServeError> {
        let state_dir = config.state_dir.clone();
        std::fs::create_dir_all(&state_dir).map_err(|source| ServeError::StateDir {
            path: state_dir.clone(),
            source,
        })?;
        if let Some(other) = DaemonInfo::read(&state_dir)
            && process_alive(other.pid)
            && other.pid != std::process::id()
        {
            return Err(ServeError::AlreadyRunning {
                pid: other.pid,
                api: other.api,
                state_dir,
            });
        }
        let store = Arc::new(Store::open(&state_dir.join("cutover.db"))?);
        let proxy = Proxy::bind(config.listen, ProxyOptions::default()).await?;
        let traffic = Arc::new(ProxyTraffic::new(proxy.clone()));
        let listener = match TcpListener::bind(api).await {
            Ok(l) => l,
            Err(source) => {
                proxy.shutdown().await;
                return Err(ServeError::Api { addr: api, source });
            }
        };
        let api_addr = listener
            .local_addr()
            .map_err(|source| ServeError::Api { addr: api, source })?;
        let platform = LocalPlatform::new(
            config.platform.local().clone(),
            config.health.clone(),
            state_dir.join("logs"),
        );
        let engine = Engine::new(
            config.clone(),
            store,
            Arc::new(platform),
            traffic.clone(),
            traffic.clone(),
            state_dir.join("runs"),
        );
        if let Err(e) = engine.recover().await {
            engine.shutdown().await;
            proxy.shutdown().await;
            return Err(e.into());
        }
        let info = DaemonInfo {
            app: config.app.clone(),
            pid: std::process::id(),
            api: api_addr,
            proxy: proxy.local_addr(),
        };
        let path = DaemonInfo::path(&state_dir);
        let json = serde_json::to_string_pretty(&info).unwrap_or_default();
        if let Err(source) = std::fs::write(&path, json) {
            engine.shutdown().await;
            proxy.shutdown().await;
            return Err(ServeError::Info { path, source });
        }
        let (stop_api, mut stopped) = watch::channel(false);
        let router = api::router(api::AppState {
            engine: engine.clone(),
            traffic: traffic.clone(),
            info: info.clone(),
        });
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

    /// Serves until SIGTERM or SIGINT, then shuts down.
    pub async fn run_until_signal(self) {
        wait_for_signal().await;
        info!("signal received, shutting down");
        self.shutdown().await;
    }

    /// Aborts any rollout (stable keeps serving until the end), stops every version
    /// the daemon started, closes the proxy and the API, and removes `daemon.json`.
    ///
    /// # Guarantees
    /// No child process of the daemon is left running when it returns.
    pub async fn shutdown(self) {
        self.engine.shutdown().await;
        self.traffic.proxy().shutdown().await;
        let _ = self.stop_api.send(true);
        let _ = self.api_task.await;
        // Belt and braces: anything the engine could not stop in an orderly way.
        cutover_platform::kill_all_children();
        let _ = std::fs::remove_file(DaemonInfo::path(&self.state_dir));
        info!("daemon stopped");
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the daemon can only be killed; Ctrl-C still
        // works through tokio's portable handler.
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

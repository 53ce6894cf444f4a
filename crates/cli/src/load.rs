//! Steady demo traffic against the proxy, counted by the version that answered.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

/// Requests and failures per version, as the load generator saw them.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// version → (requests, 5xx); `-` for answers with no version (the proxy's own).
    pub by_version: BTreeMap<String, (u64, u64)>,
    /// Requests that got no answer at all.
    pub transport_errors: u64,
}

/// A running load generator; [`Load::stop`] ends it and returns the tally.
pub struct Load {
    stop: watch::Sender<bool>,
    workers: JoinSet<()>,
    tally: Arc<Mutex<Tally>>,
}

impl Load {
    /// Sends about `rate` requests per second to `target`, spread over a few
    /// workers, until stopped.
    pub fn start(target: SocketAddr, rate: u32) -> anyhow::Result<Load> {
        const WORKERS: u32 = 4;
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()?;
        let (stop, stopped) = watch::channel(false);
        let tally = Arc::new(Mutex::new(Tally::default()));
        let mut workers = JoinSet::new();
        let period = Duration::from_secs_f64(f64::from(WORKERS) / f64::from(rate.max(1)));
        for _ in 0..WORKERS {
            let client = client.clone();
            let tally = tally.clone();
            let mut stopped = stopped.clone();
            let url = format!("http://{target}/");
            workers.spawn(async move {
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = stopped.wait_for(|s| *s) => return,
                        _ = tick.tick() => {}
                    }
                    let answer = client.get(&url).send().await;
                    let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
                    match answer {
                        Ok(r) => {
                            let version = r
                                .headers()
                                .get("x-cutover-version")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("-")
                                .to_owned();
                            let entry = t.by_version.entry(version).or_default();
                            entry.0 += 1;
                            entry.1 += u64::from(r.status().is_server_error());
                        }
                        Err(_) => t.transport_errors += 1,
                    }
                }
            });
        }
        Ok(Load {
            stop,
            workers,
            tally,
        })
    }

    pub async fn stop(mut self) -> Tally {
        let _ = self.stop.send(true);
        while self.workers.join_next().await.is_some() {}
        self.tally.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

//! The CLI's side of the daemon's HTTP API.

use anyhow::{Context, anyhow};
use cutover_api::{ErrorBody, RunEvent};
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::args::ClientArgs;
use crate::exit;

/// A client of one daemon.
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(api: &str) -> anyhow::Result<Client> {
        let base = if api.starts_with("http://") {
            api.to_owned()
        } else {
            format!("http://{api}")
        };
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .context("could not build an HTTP client")?;
        Ok(Client {
            base: base.trim_end_matches('/').to_owned(),
            http,
        })
    }

    /// Finds the daemon: `--api` if given, else `daemon.json` in the config's state dir.
    ///
    /// # Errors
    /// Exit code 2 when the config is invalid; 1 when no daemon runs.
    pub fn locate(args: &ClientArgs) -> anyhow::Result<Client> {
        if let Some(api) = &args.api {
            return Client::new(api);
        }
        let config = cutover_spec::load(&args.config.file)?;
        let info = cutover_server::DaemonInfo::read(&config.state_dir).ok_or_else(|| {
            exit::with_code(
                exit::INTERNAL,
                format!(
                    "no cutover daemon is running for `{}`: start one with `cutover serve -f {}` (looked for {})",
                    config.app,
                    args.config.file.display(),
                    cutover_server::DaemonInfo::path(&config.state_dir).display()
                ),
            )
        })?;
        Client::new(&info.api.to_string())
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let response = self
            .http
            .get(self.url(path))
            .send()
            .await
            .with_context(|| self.unreachable())?;
        decode(response).await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        let response = self
            .http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .with_context(|| self.unreachable())?;
        decode(response).await
    }

    /// The run's events, recorded then live, until its final one.
    pub async fn events(
        &self,
        run_id: &str,
    ) -> anyhow::Result<impl Stream<Item = anyhow::Result<RunEvent>> + use<>> {
        let response = self
            .http
            .get(self.url(&format!("/api/v1/runs/{run_id}/events")))
            .send()
            .await
            .with_context(|| self.unreachable())?;
        if !response.status().is_success() {
            return Err(api_error(response).await);
        }
        let mut buffer = Vec::new();
        let lines = response.bytes_stream().flat_map(move |chunk| {
            let mut out = Vec::new();
            match chunk {
                Ok(bytes) => {
                    buffer.extend_from_slice(&bytes);
                    while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buffer.drain(..=end).collect();
                        out.push(
                            serde_json::from_slice::<RunEvent>(&line)
                                .context("the daemon sent an event that is not JSON"),
                        );
                    }
                }
                Err(e) => out.push(Err(anyhow!(e).context(
                    "lost the connection to the daemon; the run goes on: see `cutover status`",
                ))),
            }
            futures_util::stream::iter(out)
        });
        Ok(lines)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn unreachable(&self) -> String {
        format!(
            "could not reach the cutover daemon at {}; is `cutover serve` running?",
            self.base
        )
    }
}

async fn decode<T: DeserializeOwned>(response: reqwest::Response) -> anyhow::Result<T> {
    if !response.status().is_success() {
        return Err(api_error(response).await);
    }
    response
        .json()
        .await
        .context("the daemon's answer could not be read")
}

/// The daemon refused a request; nothing was changed.
#[derive(Debug)]
pub struct Refused {
    /// The API's machine code: `busy`, `already_serving`, `invalid_version`, ...
    pub code: String,
    pub message: String,
    pub status: u16,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refused {}

impl Refused {
    /// The exit code this refusal stands for.
    pub fn exit_code(&self) -> u8 {
        match self.code.as_str() {
            "busy" | "shutting_down" => exit::BLOCKED,
            "invalid_config" | "restart_needed" => exit::USAGE,
            _ if (400..500).contains(&self.status) => exit::USAGE,
            _ => exit::INTERNAL,
        }
    }
}

async fn api_error(response: reqwest::Response) -> anyhow::Error {
    let status = response.status().as_u16();
    let body = response.json::<ErrorBody>().await.unwrap_or(ErrorBody {
        error: "the daemon refused the request".into(),
        code: String::new(),
    });
    Refused {
        code: body.code,
        message: body.error,
        status,
    }
    .into()
}

//! The CLI's side of the daemon's HTTP API. Every request carries the daemon's
//! token, from `CUTOVER_TOKEN` or the state directory's `token` file (with `--api`,
//! the file only when the local daemon listens at that very address).

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use cutover_api::{ErrorBody, RunEvent};
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::args::{ClientArgs, ConfigArgs};
use crate::exit;

/// The environment variable that gives the API token, before any token file.
pub const TOKEN_VAR: &str = "CUTOVER_TOKEN";

/// A client of one daemon.
pub struct Client {
    base: String,
    http: reqwest::Client,
    token: Credentials,
}

/// The token the client sends, and where it came from (for the message when the
/// daemon refuses it).
struct Credentials {
    token: Option<String>,
    source: String,
}

impl Credentials {
    /// `CUTOVER_TOKEN` if set, else the token file of `state_dir`, if there is one;
    /// `Err` says why no token file is used.
    fn find(state_dir: Result<&Path, &str>) -> Credentials {
        if let Ok(token) = std::env::var(TOKEN_VAR)
            && !token.trim().is_empty()
        {
            return Credentials {
                token: Some(token.trim().to_owned()),
                source: TOKEN_VAR.to_owned(),
            };
        }
        let path = match state_dir {
            Ok(dir) => cutover_server::auth::Token::path(dir),
            Err(why) => {
                return Credentials {
                    token: None,
                    source: format!("none: {TOKEN_VAR} is not set and {why}"),
                };
            }
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Credentials {
                token: Some(text.trim().to_owned()),
                source: path.display().to_string(),
            },
            Err(e) => Credentials {
                token: None,
                source: format!(
                    "none: {TOKEN_VAR} is not set and {} could not be read ({e})",
                    path.display()
                ),
            },
        }
    }

    fn describe(&self) -> String {
        match &self.token {
            Some(_) => format!("the token sent was from {}", self.source),
            None => format!("no token was sent ({})", self.source),
        }
    }
}

impl Client {
    /// A client of the daemon whose API is at `api`, with the token from
    /// `CUTOVER_TOKEN` or else from `state_dir`'s token file.
    pub fn new(api: &str, state_dir: &Path) -> anyhow::Result<Client> {
        Client::with_credentials(api, Credentials::find(Ok(state_dir)))
    }

    fn with_credentials(api: &str, token: Credentials) -> anyhow::Result<Client> {
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
            token,
        })
    }

    /// Finds the daemon: `--api` if given, else `daemon.json` in the config's state dir.
    ///
    /// # Errors
    /// Exit code 2 when the config is invalid; 1 when no daemon runs.
    pub fn locate(args: &ClientArgs) -> anyhow::Result<Client> {
        if let Some(api) = &args.api {
            let state_dir = local_state_dir_serving(api, &args.config);
            return Client::with_credentials(
                api,
                Credentials::find(state_dir.as_deref().map_err(String::as_str)),
            );
        }
        let config = args.config.locate()?;
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
        Client::new(&info.api.to_string(), &config.state_dir)
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let response = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .with_context(|| self.unreachable())?;
        self.decode(response).await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        let response = self
            .request(reqwest::Method::POST, path)
            .json(body)
            .send()
            .await
            .with_context(|| self.unreachable())?;
        self.decode(response).await
    }

    /// The run's events, recorded then live, until its final one.
    pub async fn events(
        &self,
        run_id: &str,
    ) -> anyhow::Result<impl Stream<Item = anyhow::Result<RunEvent>> + use<>> {
        let response = self
            .request(
                reqwest::Method::GET,
                &format!("/api/v1/runs/{run_id}/events"),
            )
            .send()
            .await
            .with_context(|| self.unreachable())?;
        if !response.status().is_success() {
            return Err(self.api_error(response).await);
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

    /// The body of a GET as it arrives, chunk by chunk (a followed log).
    pub async fn stream(
        &self,
        path: &str,
    ) -> anyhow::Result<impl Stream<Item = anyhow::Result<Vec<u8>>> + use<>> {
        let response = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .with_context(|| self.unreachable())?;
        if !response.status().is_success() {
            return Err(self.api_error(response).await);
        }
        Ok(response.bytes_stream().map(|chunk| {
            chunk
                .map(|bytes| bytes.to_vec())
                .context("lost the connection to the daemon")
        }))
    }

    /// A request to `path` with the token, if the client has one.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn decode<T: DeserializeOwned>(&self, response: reqwest::Response) -> anyhow::Result<T> {
        if !response.status().is_success() {
            return Err(self.api_error(response).await);
        }
        response
            .json()
            .await
            .context("the daemon's answer could not be read")
    }

    async fn api_error(&self, response: reqwest::Response) -> anyhow::Error {
        let mut refused = api_error(response).await;
        if refused.status == 401 {
            refused.message = format!("{}; {}", refused.message, self.token.describe());
        }
        refused.into()
    }

    fn unreachable(&self) -> String {
        format!(
            "could not reach the cutover daemon at {}; is `cutover serve` running?",
            self.base
        )
    }
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
            "busy" | "shutting_down" | "metrics_unavailable" => exit::BLOCKED,
            "invalid_config" | "restart_needed" => exit::USAGE,
            _ if (400..500).contains(&self.status) => exit::USAGE,
            _ => exit::INTERNAL,
        }
    }
}

async fn api_error(response: reqwest::Response) -> Refused {
    let status = response.status().as_u16();
    let body = response.json::<ErrorBody>().await.unwrap_or(ErrorBody {
        error: "the daemon refused the request".into(),
        code: String::new(),
        field: None,
    });
    Refused {
        code: body.code,
        message: body.error,
        status,
    }
}

/// The state directory of the config in `config_file` if its daemon (by its
/// `daemon.json`) listens at `api`: only then is its token file meant for `api`;
/// any other host gets no token but `CUTOVER_TOKEN`, never the local one over http.
fn local_state_dir_serving(api: &str, config: &ConfigArgs) -> Result<PathBuf, String> {
    let elsewhere =
        || format!("--api {api} is not the address of the local daemon (its daemon.json)");
    let config = config.locate().map_err(|_| elsewhere())?;
    let info = cutover_server::DaemonInfo::read(&config.state_dir).ok_or_else(elsewhere)?;
    let named = api
        .strip_prefix("http://")
        .unwrap_or(api)
        .trim_end_matches('/');
    let same = named
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|addr| addr == info.api);
    if same {
        Ok(config.state_dir)
    } else {
        Err(elsewhere())
    }
}

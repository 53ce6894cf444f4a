//! A command per metric: its standard output is the number. It runs with
//! `CUTOVER_VERSION`, `CUTOVER_ROLE`, `CUTOVER_APP` and `CUTOVER_WINDOW_SECONDS`
//! in its environment (and the placeholders filled in its argv), and is killed
//! at its timeout.

use std::process::Stdio;

use async_trait::async_trait;
use cutover_analysis::SourceFault;
use cutover_spec::{CommandQuery, CommandSource, Queries};

use crate::http::{excerpt, number};
use crate::template::At;
use crate::window::{Measure, Reader};

pub(crate) struct Command {
    spec: CommandSource,
}

impl Command {
    pub(crate) fn new(spec: &CommandSource) -> Command {
        Command { spec: spec.clone() }
    }
}

#[async_trait]
impl Reader for Command {
    type Query = CommandQuery;
    const NAME: &'static str = "command";
    const QUERIES_AT: &'static str = "";

    fn queries(&self) -> &Queries<CommandQuery> {
        &self.spec.metrics
    }

    async fn read(&self, query: &CommandQuery, _: Measure, at: &At) -> Result<f64, SourceFault> {
        let argv: Vec<String> = query.run.iter().map(|a| at.render(a)).collect();
        let (program, args) = argv.split_first().ok_or_else(|| SourceFault::Invalid {
            message: "the command is empty".into(),
        })?;
        let child = tokio::process::Command::new(program)
            .args(args)
            .env("CUTOVER_VERSION", &at.version)
            .env("CUTOVER_ROLE", &at.role)
            .env("CUTOVER_APP", &at.app)
            .env(
                "CUTOVER_WINDOW_SECONDS",
                format!("{:.3}", at.interval.as_secs_f64()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| SourceFault::Unreachable {
                message: format!("cannot run `{program}`: {e}"),
            })?;
        let output = tokio::time::timeout(query.timeout, child.wait_with_output())
            .await
            .map_err(|_| SourceFault::Timeout {
                timeout_ms: query.timeout.as_millis() as u64,
            })?
            .map_err(|e| SourceFault::Unreachable {
                message: format!("`{program}` could not be waited for: {e}"),
            })?;
        if !output.status.success() {
            return Err(SourceFault::Invalid {
                message: format!(
                    "`{program}` failed ({}): {}",
                    output.status,
                    excerpt(&output.stderr)
                ),
            });
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let text = stdout.trim();
        if text.is_empty() {
            return Err(SourceFault::Empty {
                detail: format!("`{program}` printed nothing"),
            });
        }
        number(&serde_json::Value::String(text.to_owned()))
    }
}

#[cfg(test)]
mod tests;

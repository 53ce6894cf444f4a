//! Reaching the Docker daemon (`platform.docker.host`, else `DOCKER_HOST`, else
//! the default socket) and making sure a release's image is there: pulled when
//! the policy says so, with its progress in the log, and a clear error naming
//! `platform.docker.image` when it does not exist; and, for `network: published`,
//! that the daemon has the bridge network a published port needs.

use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::CreateImageOptionsBuilder;
use bollard::query_parameters::InspectNetworkOptions;
use cutover_spec::{DockerNetwork, DockerSpec, HealthSource, PullPolicy, defaults};
use futures_util::StreamExt;
use tokio::time::Instant;

use super::container::{daemon_message, is_not_found};

/// How long a request to the daemon may take to be answered (a pull's or a
/// wait's answer starts at once and streams on beyond it).
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// How often a pull's progress is logged.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Where the daemon is: `platform.docker.host`, else `DOCKER_HOST`, else the
/// default socket; with the setting it came from, for messages.
pub(crate) fn host(spec: &DockerSpec) -> (String, &'static str) {
    if let Some(host) = &spec.host {
        return (host.clone(), "platform.docker.host");
    }
    match std::env::var("DOCKER_HOST") {
        Ok(host) if !host.is_empty() => (host, "DOCKER_HOST (platform.docker.host is not set)"),
        _ => (
            defaults::DOCKER_HOST.to_owned(),
            "platform.docker.host (not set; the default)",
        ),
    }
}

/// Connects to the daemon and agrees on an API version with it.
///
/// # Errors
/// When the socket is missing, nothing answers on it, or it is not a unix socket;
/// the message names the setting to fix.
pub(crate) async fn connect(spec: &DockerSpec) -> Result<Docker, String> {
    let (host, setting) = host(spec);
    let Some(path) = host.strip_prefix("unix://") else {
        return Err(format!(
            "cannot reach the Docker daemon at {host} ({setting}): only unix sockets \
             (unix:///path/to/docker.sock) are supported"
        ));
    };
    let unreachable = |why: String| {
        format!(
            "cannot reach the Docker daemon at {host} ({setting}): {why}; is dockerd running, \
             and is that its socket?"
        )
    };
    let docker =
        Docker::connect_with_unix(path, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
            .map_err(|e| match e {
                bollard::errors::Error::SocketNotFoundError(_) => {
                    unreachable(format!("no socket at {path}"))
                }
                e => unreachable(e.to_string()),
            })?;
    docker
        .negotiate_version()
        .await
        .map_err(|e| unreachable(daemon_message(&e)))
}

/// Makes sure `image` is there, as `spec.pull` says, and has a `HEALTHCHECK` when
/// health is to come from it.
///
/// # Errors
/// When it does not exist (locally with `pull: never`, or in its registry), cannot
/// be pulled, or lacks the `HEALTHCHECK` asked for; the message names the setting.
pub(crate) async fn ensure_image(
    docker: &Docker,
    spec: &DockerSpec,
    image: &str,
) -> Result<(), String> {
    let local = match docker.inspect_image(image).await {
        Ok(inspect) => Some(inspect),
        Err(e) if is_not_found(&e) => None,
        Err(e) => {
            return Err(format!(
                "cannot inspect image {image}: {}",
                daemon_message(&e)
            ));
        }
    };
    let inspect = match (spec.pull, local) {
        (PullPolicy::Never, None) => {
            return Err(format!(
                "image {image} (platform.docker.image) is not on the Docker daemon, and \
                 platform.docker.pull is `never`; build or load it, or allow pulling with \
                 `pull: missing`"
            ));
        }
        (PullPolicy::Missing | PullPolicy::Never, Some(inspect)) => inspect,
        (PullPolicy::Missing | PullPolicy::Always, _) => {
            pull(docker, image).await?;
            docker.inspect_image(image).await.map_err(|e| {
                format!(
                    "cannot inspect image {image} after pulling it: {}",
                    daemon_message(&e)
                )
            })?
        }
    };
    if spec.healthcheck == HealthSource::Image {
        let test = inspect
            .config
            .and_then(|c| c.healthcheck)
            .and_then(|h| h.test);
        let has_one = test.is_some_and(|t| t.first().is_some_and(|first| first != "NONE"));
        if !has_one {
            return Err(format!(
                "image {image} has no HEALTHCHECK, but platform.docker.healthcheck is `image`; \
                 give the image one, or use `healthcheck: http` (cutover's check under `health`)"
            ));
        }
    }
    Ok(())
}

/// The network a published port's container joins: the daemon's default bridge.
pub(crate) const BRIDGE: &str = "bridge";

/// Makes sure the daemon can publish a port when `spec.network` asks for one: a
/// daemon started with `--bridge=none` accepts such a container and runs it
/// with no network at all, so that nothing ever answers on the port.
///
/// # Errors
/// When the daemon has no `bridge` network; the message names the setting.
pub(crate) async fn ensure_network(docker: &Docker, spec: &DockerSpec) -> Result<(), String> {
    let DockerNetwork::Published { port } = spec.network else {
        return Ok(());
    };
    match docker
        .inspect_network(BRIDGE, None::<InspectNetworkOptions>)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Err(format!(
            "platform.docker.network publishes port {port}, but the Docker daemon at {} has \
             no `{BRIDGE}` network to publish it from (is dockerd running with \
             --bridge=none?); start it with its bridge, or use `network: host`",
            host(spec).0
        )),
        Err(e) => Err(format!(
            "cannot inspect the daemon's `{BRIDGE}` network (platform.docker.network): {}",
            daemon_message(&e)
        )),
    }
}

/// Pulls `image`, logging its progress every few seconds.
async fn pull(docker: &Docker, image: &str) -> Result<(), String> {
    let (from_image, tag) = split_reference(image);
    let mut options = CreateImageOptionsBuilder::new().from_image(from_image);
    if let Some(tag) = tag {
        options = options.tag(tag);
    }
    tracing::info!(image, "pulling image");
    let mut progress = docker.create_image(Some(options.build()), None, None);
    let mut logged = Instant::now();
    while let Some(step) = progress.next().await {
        match step {
            Ok(info) => {
                if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                    return Err(not_pulled(image, &detail));
                }
                let detail = info.progress_detail.unwrap_or_default();
                let (current, total) = (detail.current.unwrap_or(0), detail.total.unwrap_or(0));
                // Every step without a byte count (a layer done, the digest), and a
                // byte count now and then.
                if total == 0 || logged.elapsed() >= PROGRESS_EVERY {
                    let status = info.status.unwrap_or_default();
                    let layer = info.id.unwrap_or_default();
                    tracing::info!(image, layer, current, total, "pull: {status}");
                    logged = Instant::now();
                }
            }
            Err(e) => return Err(not_pulled(image, &daemon_message(&e))),
        }
    }
    tracing::info!(image, "pulled image");
    Ok(())
}

fn not_pulled(image: &str, why: &str) -> String {
    format!(
        "image {image} (platform.docker.image) is not on the Docker daemon and could not be \
         pulled: {why}; check the name and tag, or that the registry is reachable"
    )
}

/// `registry:5000/app:v2` → (`registry:5000/app`, `v2`); a digest stays whole; no
/// tag is `latest` (the API would pull every tag otherwise).
fn split_reference(image: &str) -> (&str, Option<&str>) {
    if image.contains('@') {
        return (image, None);
    }
    let name_start = image.rfind('/').map_or(0, |i| i + 1);
    match image[name_start..].rfind(':') {
        Some(at) => (
            &image[..name_start + at],
            Some(&image[name_start + at + 1..]),
        ),
        None => (image, Some("latest")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_name_and_tag() {
        assert_eq!(split_reference("shop:v2"), ("shop", Some("v2")));
        assert_eq!(
            split_reference("registry:5000/team/shop:v2"),
            ("registry:5000/team/shop", Some("v2"))
        );
        assert_eq!(
            split_reference("registry:5000/shop"),
            ("registry:5000/shop", Some("latest"))
        );
        assert_eq!(
            split_reference("shop@sha256:00ff"),
            ("shop@sha256:00ff", None)
        );
    }
}

//! `platform.docker`: the image, its command and environment, how its port is
//! reached, its limits and timeouts, when it is pulled, what says it is healthy, and
//! the daemon's socket.

use std::collections::BTreeMap;

use super::Checker;
use crate::parse::node::Entry;
use crate::types::{DockerNetwork, DockerSpec, HealthSource, PullPolicy, defaults};

pub(super) const DOCKER: &[&str] = &[
    "image",
    "command",
    "env",
    "network",
    "port",
    "memory",
    "cpus",
    "instances",
    "startup_timeout",
    "drain_timeout",
    "stop_grace",
    "pull",
    "healthcheck",
    "host",
];

const IMAGE_EXAMPLE: &str = "`registry.example/shop:${VERSION}`";

/// The most CPUs a container may be limited to: beyond it, a typo.
const MAX_CPUS: f64 = 1024.0;

impl Checker<'_> {
    pub(super) fn docker(&mut self, e: &Entry) -> Option<DockerSpec> {
        let path = "platform.docker";
        let f = self.fields(&e.value, path, DOCKER)?;
        let image = self.require(
            &f,
            path,
            e.key_pos,
            "image",
            &format!("the image to run, a tag like {IMAGE_EXAMPLE} or a digest"),
        );
        let image = image.and_then(|e| self.image(e));
        let command = match f.get("command") {
            Some(e) => self.command(e).map(Some),
            None => Some(None),
        };
        let env = self.optional(&f, "env", BTreeMap::new(), |c, e| c.env(e, true));
        let network = self.network(f.get("network"), f.get("port"));
        let memory = match f.get("memory") {
            Some(e) => self.memory(e).map(Some),
            None => Some(None),
        };
        let cpus = match f.get("cpus") {
            Some(e) => self.cpus(e).map(Some),
            None => Some(None),
        };
        let instances = self.optional(&f, "instances", defaults::INSTANCES, |c, e| {
            c.whole(e, 1, defaults::MAX_INSTANCES.into())
                .map(|n| n as u32)
        });
        let startup_timeout = self.optional(
            &f,
            "startup_timeout",
            defaults::STARTUP_TIMEOUT,
            Self::positive_duration,
        );
        let drain_timeout =
            self.optional(&f, "drain_timeout", defaults::DRAIN_TIMEOUT, Self::duration);
        let stop_grace = self.optional(&f, "stop_grace", defaults::STOP_GRACE, Self::duration);
        let pull = self.optional(&f, "pull", PullPolicy::Missing, |c, e| {
            c.keyword(
                e,
                &[
                    ("missing", PullPolicy::Missing),
                    ("always", PullPolicy::Always),
                    ("never", PullPolicy::Never),
                ],
            )
        });
        let healthcheck = self.optional(&f, "healthcheck", HealthSource::Http, |c, e| {
            c.keyword(
                e,
                &[("http", HealthSource::Http), ("image", HealthSource::Image)],
            )
        });
        let host = match f.get("host") {
            Some(e) => self.docker_host(e).map(Some),
            None => Some(None),
        };
        if let (Some(DockerNetwork::Host), Some(command), Some(env), Some(image)) =
            (network, &command, &env, f.get("image"))
        {
            let command = command.as_deref().unwrap_or_default();
            let blame = f.get("command").unwrap_or(image);
            self.uses_port(blame, command, env);
        }
        Some(DockerSpec {
            image: image?,
            command: command?,
            env: env?,
            network: network?,
            memory: memory?,
            cpus: cpus?,
            instances: instances?,
            startup_timeout: startup_timeout?,
            drain_timeout: drain_timeout?,
            stop_grace: stop_grace?,
            pull: pull?,
            healthcheck: healthcheck?,
            host: host?,
        })
    }

    /// A tag (`${VERSION}` allowed) or a digest: no whitespace, not empty.
    fn image(&mut self, e: &Entry) -> Option<String> {
        let image = self.text(e, "the image reference")?;
        if image.trim().is_empty() || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
            self.error(
                Self::at(e),
                format!(
                    "`image` must be an image reference without spaces, a tag like \
                     {IMAGE_EXAMPLE} or a digest like `shop@sha256:...`, got {}",
                    e.value.describe()
                ),
            );
            return None;
        }
        self.placeholders(&e.value, &image, "`image`")
            .then_some(image)
    }

    /// `network` with the `port` it needs: `port` only with `published`.
    fn network(&mut self, network: Option<&Entry>, port: Option<&Entry>) -> Option<DockerNetwork> {
        let published = match network {
            Some(e) => self.keyword(e, &[("host", false), ("published", true)])?,
            None => false,
        };
        match (published, port) {
            (true, Some(e)) => {
                let port = self.whole(e, 1, u16::MAX.into())?;
                Some(DockerNetwork::Published { port: port as u16 })
            }
            (true, None) => Some(DockerNetwork::Published {
                port: defaults::CONTAINER_PORT,
            }),
            (false, Some(e)) => {
                self.error(
                    e.key_pos,
                    "`port` is the port the service listens on inside its container, which only \
                     `network: published` has; with host networking (the default) the service \
                     listens on `${PORT}`, picked per instance. Add `network: published`, or \
                     remove `port`",
                );
                None
            }
            (false, None) => Some(DockerNetwork::Host),
        }
    }

    /// A memory limit: a size of at least 6 MiB (the daemon's own minimum).
    fn memory(&mut self, e: &Entry) -> Option<u64> {
        const MIN: u64 = 6 * 1024 * 1024;
        let bytes = self.size(e)?;
        if bytes < MIN {
            self.error(
                Self::at(e),
                format!(
                    "`memory` must be at least 6MiB (Docker's minimum), like `256MiB`, got {}",
                    e.value.describe()
                ),
            );
            return None;
        }
        Some(bytes)
    }

    fn cpus(&mut self, e: &Entry) -> Option<f64> {
        let n = match &e.value.value {
            crate::parse::node::Value::Int(i) => Some(*i as f64),
            crate::parse::node::Value::Float(f) => Some(*f),
            _ => None,
        };
        match n {
            Some(n) if n > 0.0 && n <= MAX_CPUS => Some(n),
            _ => {
                self.error(
                    Self::at(e),
                    format!(
                        "`cpus` must be a number of CPUs greater than 0, like `0.5` or `2`, got {}",
                        e.value.describe()
                    ),
                );
                None
            }
        }
    }

    /// `unix:///path/to/docker.sock`: the only transport built in.
    fn docker_host(&mut self, e: &Entry) -> Option<String> {
        let host = self.text(e, "the Docker daemon's socket")?;
        if host
            .strip_prefix("unix://")
            .is_some_and(|p| p.starts_with('/'))
        {
            return Some(host);
        }
        let hint = if host.starts_with('/') {
            format!("; did you mean `unix://{host}`?")
        } else {
            String::new()
        };
        self.error(
            Self::at(e),
            format!(
                "`host` must be the Docker daemon's unix socket, like `{}`, got {}{hint} \
                 (TCP and TLS daemons are not supported)",
                defaults::DOCKER_HOST,
                e.value.describe()
            ),
        );
        None
    }
}

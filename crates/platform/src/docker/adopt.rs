//! Taking over the containers an earlier daemon left running, found by their
//! labels, and removing those not taken over.
//!
//! Only a container with this state directory's and app's labels, started by
//! another daemon process, running, and running what this platform would run for
//! the release (the same version, image, command, environment, network and
//! limits) is adopted; of two under one index, the later one. Everything else of
//! ours that an earlier daemon left is removed by `stop_unadopted`; anything
//! without our labels is never looked at twice.

use std::cmp::Reverse;
use std::net::{Ipv4Addr, SocketAddr};

use bollard::Docker;
use bollard::models::{ContainerSummary, ContainerSummaryStateEnum};
use bollard::query_parameters::ListContainersOptionsBuilder;
use cutover_engine::platform::{PlatformError, ReleaseSpec};

use super::labels::{self, Instance};
use super::{Container, DockerPlatform};
use crate::process::{Process, Runs, Unit};
use crate::release::SupervisedRelease;

/// A container an earlier daemon left, as the daemon lists it.
struct Leftover {
    name: String,
    instance: Instance,
    running: bool,
    created: i64,
}

impl DockerPlatform {
    /// [`Platform::adopt`](cutover_engine::platform::Platform::adopt) for containers.
    pub(crate) async fn adopt_release(
        &self,
        spec: &ReleaseSpec,
    ) -> Result<Option<SupervisedRelease>, PlatformError> {
        let docker = match self.docker().await {
            Ok(docker) => docker,
            Err(e) => {
                tracing::warn!(release = %spec.name, "not looking for containers to adopt: {e}");
                return Ok(None);
            }
        };
        let leftovers = self.leftovers(&docker).await;
        if !leftovers
            .iter()
            .any(|l| l.running && l.instance.release == spec.name)
        {
            return Ok(None);
        }
        let release = self.release(spec).await?;
        let survivors = self.survivors(spec, &release, leftovers);
        if survivors.is_empty() {
            return Ok(None);
        }
        let image_health = match &release.launcher.runs {
            Runs::Containers(containers) => containers.image_health(),
            Runs::Processes(_) => false,
        };
        let adopted = survivors
            .into_iter()
            .map(|leftover| {
                let Instance { index, port, .. } = leftover.instance;
                let output = self.output(&spec.name, index);
                tracing::info!(release = %spec.name, instance = index,
                    container = %leftover.name, port, "adopting container");
                let (container, exit) = Container::adopt(
                    docker.clone(),
                    leftover.name.clone(),
                    image_health,
                    output.clone(),
                );
                self.adopted().push(leftover.name);
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                Process::new(
                    index,
                    Unit::Container(container),
                    addr,
                    output.path,
                    true,
                    exit,
                )
            })
            .collect();
        release.take_over(spec, adopted).await.map(Some)
    }

    /// Those of `leftovers` that can be adopted into `release`: at most
    /// `spec.instances`, lowest indexes first, not adopted already.
    fn survivors(
        &self,
        spec: &ReleaseSpec,
        release: &SupervisedRelease,
        leftovers: Vec<Leftover>,
    ) -> Vec<Leftover> {
        let Runs::Containers(containers) = &release.launcher.runs else {
            return Vec::new();
        };
        let expected = containers.runs();
        let adopted = self.adopted().clone();
        let mut survivors: Vec<Leftover> = leftovers
            .into_iter()
            .filter(|l| l.instance.release == spec.name && !adopted.contains(&l.name))
            .filter(|l| {
                let name = &l.name;
                if l.instance.version != spec.version {
                    tracing::info!(release = %spec.name, container = %name, recorded = %l.instance.version,
                        "not adopting a container of another version");
                    false
                } else if l.instance.runs != expected {
                    tracing::info!(release = %spec.name, container = %name,
                        "not adopting a container started with another image, command or settings");
                    false
                } else if !l.running {
                    tracing::info!(release = %spec.name, container = %name, "not adopting a container that has exited");
                    false
                } else {
                    true
                }
            })
            .collect();
        survivors.sort_by_key(|l| (l.instance.index, Reverse(l.created)));
        survivors.dedup_by_key(|l| l.instance.index);
        survivors.truncate(spec.instances as usize);
        survivors
    }

    /// Every container of this state directory and app that another daemon
    /// process started and this one has not adopted, running or not.
    async fn leftovers(&self, docker: &Docker) -> Vec<Leftover> {
        let labels = match self.labels() {
            Ok(labels) => labels,
            Err(e) => {
                tracing::warn!("not looking for the containers an earlier daemon left: {e}");
                return Vec::new();
            }
        };
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&labels.filter())
            .build();
        let listed = match docker.list_containers(Some(options)).await {
            Ok(listed) => listed,
            Err(e) => {
                tracing::warn!("could not list the containers an earlier daemon left: {e}");
                return Vec::new();
            }
        };
        let adopted = self.adopted().clone();
        listed
            .into_iter()
            .filter_map(|summary| leftover(&labels, summary))
            .filter(|l| !adopted.contains(&l.name))
            .collect()
    }

    /// Removes every leftover (see [`DockerPlatform::leftovers`]); a line per removed
    /// container.
    pub(crate) async fn remove_leftovers(&self) -> Vec<String> {
        let Ok(docker) = self.docker().await else {
            return Vec::new();
        };
        let mut removed = Vec::new();
        for leftover in self.leftovers(&docker).await {
            let Instance { release, index, .. } = &leftover.instance;
            let what = format!(
                "container {} (release {release}, instance {index})",
                leftover.name
            );
            let options = bollard::query_parameters::RemoveContainerOptionsBuilder::new()
                .force(true)
                .build();
            match docker.remove_container(&leftover.name, Some(options)).await {
                Ok(()) => {
                    tracing::warn!("removed {what}, left by an earlier daemon");
                    removed.push(what);
                }
                Err(e) => {
                    tracing::error!("could not remove {what}, left by an earlier daemon: {e}")
                }
            }
        }
        removed
    }
}

/// `summary` as a leftover, if it is `ours`, from another daemon process.
fn leftover(ours: &labels::Labels, summary: ContainerSummary) -> Option<Leftover> {
    let labels = summary.labels.unwrap_or_default();
    let this_session = labels.get(labels::SESSION).map(String::as_str) == Some(labels::session());
    if !ours.owns(&labels) || this_session {
        return None;
    }
    let name = summary.names?.first()?.trim_start_matches('/').to_owned();
    let Some(instance) = Instance::from_labels(&labels) else {
        tracing::warn!(container = %name, "a container with our labels names no instance; not touching it");
        return None;
    };
    Some(Leftover {
        name,
        instance,
        running: summary.state == Some(ContainerSummaryStateEnum::RUNNING),
        created: summary.created.unwrap_or_default(),
    })
}

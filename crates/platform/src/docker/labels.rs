//! The labels every container started here carries: whose it is (this cutover
//! state directory, this daemon process, the app) and which instance it runs (the
//! release, version, instance, port and what it runs), started by which run. They
//! are how containers are found again after a restart, and the only way anything
//! here decides a container is its own: one without our state label is never
//! touched.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::path::Path;
use std::sync::OnceLock;

/// The state directory's identity: two installs never touch each other's containers.
pub(crate) const STATE: &str = "cutover.state";
/// The daemon process that started it: what another one started is a leftover.
pub(crate) const SESSION: &str = "cutover.session";
pub(crate) const APP: &str = "cutover.app";
/// The release's name ([`ReleaseSpec::name`](cutover_engine::platform::ReleaseSpec)).
pub(crate) const RELEASE: &str = "cutover.release";
pub(crate) const VERSION: &str = "cutover.version";
pub(crate) const INSTANCE: &str = "cutover.instance";
/// The run that started it (its id), or `daemon` when the daemon started it
/// outside any run; for people and tools: adoption does not look at it.
pub(crate) const RUN: &str = "cutover.run";
/// The port of 127.0.0.1 it serves on.
pub(crate) const PORT: &str = "cutover.port";
/// What it runs (image, command, environment, network, limits), for adoption.
pub(crate) const RUNS: &str = "cutover.runs";

/// The file in the state directory that holds its identity.
const STATE_ID_FILE: &str = "docker-state-id";

/// Whose containers these are: this state directory's, for `app`.
#[derive(Debug, Clone)]
pub(crate) struct Labels {
    pub(crate) state: String,
    pub(crate) app: String,
}

/// Which instance a container runs, as its labels say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Instance {
    pub(crate) release: String,
    pub(crate) version: String,
    pub(crate) index: u32,
    pub(crate) port: u16,
    pub(crate) runs: String,
}

impl Labels {
    /// Every label of a container running `instance`, started by this daemon in
    /// `run`.
    pub(crate) fn of(&self, instance: &Instance, run: &str) -> HashMap<String, String> {
        [
            (RUN, run.to_owned()),
            (STATE, self.state.clone()),
            (SESSION, session().to_owned()),
            (APP, self.app.clone()),
            (RELEASE, instance.release.clone()),
            (VERSION, instance.version.clone()),
            (INSTANCE, instance.index.to_string()),
            (PORT, instance.port.to_string()),
            (RUNS, instance.runs.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// The daemon's filter for the containers of this state directory (and app).
    pub(crate) fn filter(&self) -> HashMap<String, Vec<String>> {
        let label = vec![
            format!("{STATE}={}", self.state),
            format!("{APP}={}", self.app),
        ];
        HashMap::from([("label".to_owned(), label)])
    }

    /// Whether `labels` are those of a container of ours (the daemon's filter
    /// said so already: this is not trusting it blindly).
    pub(crate) fn owns(&self, labels: &HashMap<String, String>) -> bool {
        labels.get(STATE) == Some(&self.state) && labels.get(APP) == Some(&self.app)
    }
}

impl Instance {
    /// The instance `labels` name, if they name one completely.
    pub(crate) fn from_labels(labels: &HashMap<String, String>) -> Option<Instance> {
        Some(Instance {
            release: labels.get(RELEASE)?.clone(),
            version: labels.get(VERSION)?.clone(),
            index: labels.get(INSTANCE)?.parse().ok()?,
            port: labels.get(PORT)?.parse().ok()?,
            runs: labels.get(RUNS)?.clone(),
        })
    }
}

/// This daemon process's identity, unique among the processes that ever use a
/// state directory.
pub(crate) fn session() -> &'static str {
    static SESSION: OnceLock<String> = OnceLock::new();
    SESSION.get_or_init(|| format!("{:012x}", random() & 0xffff_ffff_ffff))
}

/// The identity of `state_dir`, made and kept there on first use.
///
/// # Errors
/// When the file cannot be read or written.
pub(crate) fn state_identity(state_dir: &Path) -> io::Result<String> {
    let path = state_dir.join(STATE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(state_dir)?;
    let id = format!("{:016x}", random());
    std::fs::write(&path, format!("{id}\n"))?;
    Ok(id)
}

/// 64 bits that differ between processes and calls: std's randomly keyed hasher,
/// over the time and the process id.
fn random() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(since) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(since.as_nanos());
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_labels_name_the_instance_and_whose_it_is() {
        let ours = Labels {
            state: "abc".into(),
            app: "shop".into(),
        };
        let instance = Instance {
            release: "v1.baseline".into(),
            version: "v1".into(),
            index: 2,
            port: 4000,
            runs: "{}".into(),
        };
        let labels = ours.of(&instance, "20261202T100000Z-v1");
        assert_eq!(Instance::from_labels(&labels), Some(instance));
        assert_eq!(labels[RUN], "20261202T100000Z-v1");
        assert!(ours.owns(&labels));
        let theirs = Labels {
            state: "def".into(),
            app: "shop".into(),
        };
        assert!(!theirs.owns(&labels));
        assert_eq!(labels[SESSION], session());
    }

    #[test]
    fn the_state_identity_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = state_identity(dir.path()).unwrap();
        assert_eq!(state_identity(dir.path()).unwrap(), first);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(state_identity(other.path()).unwrap(), first);
    }
}

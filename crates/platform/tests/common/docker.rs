//! A real Docker daemon for tests, and tiny images assembled here from files on
//! this machine (nothing can be pulled): `FROM scratch` with Debian's static
//! busybox, or with a dynamically linked binary and the libraries `ldd` lists.
//!
//! The daemon is `CUTOVER_TEST_DOCKER_HOST` (`.ci/run` starts one on a private
//! socket and sets it), else the default socket if it answers. Without either,
//! [`daemon`] says so loudly and the test returns.
//!
//! Shared with the CLI's end-to-end tests (`#[path]`), hence no dependency on
//! anything but bollard, tar and tokio.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use bollard::Docker;
use bollard::query_parameters::{BuildImageOptionsBuilder, ListContainersOptionsBuilder};
use futures_util::StreamExt;

/// Debian's `busybox-static`: one static binary that is a shell, an HTTP server ...
pub const BUSYBOX: &str = "/bin/busybox";

/// A reachable daemon: its address, as `platform.docker.host` takes it, and a client.
pub struct TestDocker {
    pub host: String,
    pub docker: Docker,
}

/// The daemon to test against, or `None` after printing why the test is skipped.
pub async fn daemon(test: &str) -> Option<TestDocker> {
    let (host, from) = match std::env::var("CUTOVER_TEST_DOCKER_HOST") {
        Ok(host) if !host.is_empty() => (host, "CUTOVER_TEST_DOCKER_HOST"),
        _ => (
            "unix:///var/run/docker.sock".to_owned(),
            "the default socket, CUTOVER_TEST_DOCKER_HOST being unset",
        ),
    };
    let skip = |why: String| {
        eprintln!(
            "SKIPPED: no Docker daemon ({why}; {host} from {from}); {test} did not run. \
             `.ci/run` starts one; or set CUTOVER_TEST_DOCKER_HOST=unix:///path/to/docker.sock"
        );
        None
    };
    let path = host.trim_start_matches("unix://");
    let docker = match Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION) {
        Ok(docker) => docker,
        Err(e) => return skip(e.to_string()),
    };
    let docker = match docker.negotiate_version().await {
        Ok(docker) => docker,
        Err(e) => return skip(e.to_string()),
    };
    if !Path::new(BUSYBOX).exists() {
        panic!(
            "a Docker daemon answers at {host}, but {BUSYBOX} is missing: apt-get install busybox-static"
        );
    }
    Some(TestDocker { host, docker })
}

/// What goes into an image: files of this machine, and files written here.
#[derive(Default)]
pub struct ImageFiles {
    /// (on this machine, in the image)
    copied: Vec<(PathBuf, String)>,
    /// (in the image, contents)
    written: Vec<(String, Vec<u8>)>,
    /// Dockerfile lines after `FROM scratch` and `COPY`.
    dockerfile: Vec<String>,
}

impl ImageFiles {
    /// Busybox at `/bin/busybox`, and `/bin/sh`.
    pub fn busybox() -> ImageFiles {
        ImageFiles::default()
            .copy(BUSYBOX, "bin/busybox")
            .copy(BUSYBOX, "bin/sh")
    }

    /// `binary` at `/bin/<its name>`, with every library `ldd` lists at its path.
    pub fn dynamic_binary(binary: &Path) -> ImageFiles {
        let name = binary.file_name().unwrap().to_string_lossy().into_owned();
        let mut files = ImageFiles::default().copy(binary, &format!("bin/{name}"));
        for library in shared_libraries(binary) {
            let inside = library.to_string_lossy().trim_start_matches('/').to_owned();
            files = files.copy(&library, &inside);
        }
        files
    }

    pub fn copy(mut self, from: impl AsRef<Path>, to: &str) -> ImageFiles {
        self.copied.push((from.as_ref().to_owned(), to.to_owned()));
        self
    }

    pub fn write(mut self, to: &str, contents: &str) -> ImageFiles {
        self.written
            .push((to.to_owned(), contents.as_bytes().to_vec()));
        self
    }

    /// A Dockerfile line, like `HEALTHCHECK ...`.
    pub fn dockerfile(mut self, line: &str) -> ImageFiles {
        self.dockerfile.push(line.to_owned());
        self
    }

    /// The build context: a tar of the files and the Dockerfile.
    fn context(&self) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        let mut dockerfile = "FROM scratch\nCOPY rootfs/ /\n".to_owned();
        for line in &self.dockerfile {
            dockerfile.push_str(line);
            dockerfile.push('\n');
        }
        let mut add = |path: &str, bytes: &[u8], mode: u32| {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(mode);
            header.set_cksum();
            tar.append_data(&mut header, path, bytes).unwrap();
        };
        add("Dockerfile", dockerfile.as_bytes(), 0o644);
        for (from, to) in &self.copied {
            let bytes = std::fs::read(from).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
            add(&format!("rootfs/{to}"), &bytes, 0o755);
        }
        for (to, bytes) in &self.written {
            add(&format!("rootfs/{to}"), bytes, 0o644);
        }
        tar.into_inner().unwrap()
    }
}

/// The libraries `ldd` says `binary` loads, the dynamic loader included.
fn shared_libraries(binary: &Path) -> Vec<PathBuf> {
    let out = std::process::Command::new("ldd")
        .arg(binary)
        .output()
        .expect("ldd runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or
            // `/lib64/ld-linux-x86-64.so.2 (0x...)`; not `linux-vdso.so.1 (0x...)`.
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// Builds `files` into the image `tag`.
pub async fn build_image(docker: &Docker, tag: &str, files: &ImageFiles) {
    let options = BuildImageOptionsBuilder::new()
        .dockerfile("Dockerfile")
        .t(tag)
        .rm(true)
        .forcerm(true)
        .build();
    let body = bollard::body_full(files.context().into());
    let mut progress = docker.build_image(options, None, Some(body));
    let mut output = String::new();
    while let Some(step) = progress.next().await {
        match step {
            Ok(info) => {
                if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                    panic!("building {tag} failed: {detail}\n{output}");
                }
                output.push_str(&info.stream.unwrap_or_default());
            }
            Err(e) => panic!("building {tag} failed: {e}\n{output}"),
        }
    }
}

/// The names of every container, running or not, with the label `key=value`.
pub async fn containers_labelled(docker: &Docker, key: &str, value: &str) -> Vec<String> {
    let filters =
        std::collections::HashMap::from([("label".to_owned(), vec![format!("{key}={value}")])]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    docker
        .list_containers(Some(options))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| {
            c.names?
                .first()
                .map(|n| n.trim_start_matches('/').to_owned())
        })
        .collect()
}

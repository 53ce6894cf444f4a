//! `platform.docker`: its defaults, every field, and the mistakes it reports.

use super::*;

fn docker(fields: &str) -> String {
    format!("app: shop\nplatform:\n  docker:\n{fields}")
}

fn docker_spec(c: &Config) -> &DockerSpec {
    match &c.platform {
        PlatformSpec::Docker(d) => d,
        other => panic!("expected docker, got {other:?}"),
    }
}

#[test]
fn defaults_need_only_an_image_that_is_told_its_port() {
    let c = ok(&docker(
        "    image: shop:${VERSION}\n    env: { PORT: \"${PORT}\" }\n",
    ));
    let d = docker_spec(&c);
    assert_eq!(d.image, "shop:${VERSION}");
    assert_eq!(d.command, None);
    assert_eq!(d.network, DockerNetwork::Host);
    assert_eq!((d.memory, d.cpus), (None, None));
    assert_eq!(d.instances, 1);
    assert_eq!(d.startup_timeout, secs(30));
    assert_eq!(d.drain_timeout, secs(10));
    assert_eq!(d.stop_grace, secs(10));
    assert_eq!(d.pull, PullPolicy::Missing);
    assert_eq!(d.healthcheck, HealthSource::Http);
    assert_eq!(d.host, None);
    assert_eq!(c.platform.kind(), "docker");
    assert_eq!(c.platform.instances(), 1);
    assert!(c.platform.local().is_none());
}

#[test]
fn every_field() {
    let c = ok(&docker(
        r#"    image: shop@sha256:0123
    command: ["/shop", "--port", "${PORT}"]
    env: { GREETING: "hi ${VERSION}" }
    network: published
    port: 9000
    memory: 256MiB
    cpus: 1.5
    instances: 3
    startup_timeout: 5s
    drain_timeout: 1s
    stop_grace: 2s
    pull: never
    healthcheck: image
    host: unix:///run/docker.sock
"#,
    ));
    let d = docker_spec(&c);
    assert_eq!(
        d.command.as_deref().unwrap(),
        ["/shop", "--port", "${PORT}"]
    );
    assert_eq!(d.env["GREETING"], "hi ${VERSION}");
    assert_eq!(d.network, DockerNetwork::Published { port: 9000 });
    assert_eq!(d.memory, Some(256 * 1024 * 1024));
    assert_eq!(d.cpus, Some(1.5));
    assert_eq!(d.instances, 3);
    assert_eq!(d.stop_grace, secs(2));
    assert_eq!(d.pull, PullPolicy::Never);
    assert_eq!(d.healthcheck, HealthSource::Image);
    assert_eq!(d.host.as_deref(), Some("unix:///run/docker.sock"));
    assert_eq!(c.platform.drain_timeout(), secs(1));
}

#[test]
fn published_listens_on_8080_inside_unless_told() {
    let c = ok(&docker("    image: shop:1\n    network: published\n"));
    assert_eq!(
        docker_spec(&c).network,
        DockerNetwork::Published { port: 8080 }
    );
}

#[test]
fn mistakes_name_the_field_and_what_would_be_valid() {
    assert_eq!(
        error(&docker("    env: { PORT: \"${PORT}\" }\n")),
        "cutover.yaml:3:3: `platform.docker` is missing the required field `image` (the image \
         to run, a tag like `registry.example/shop:${VERSION}` or a digest)"
    );
    let e = error(&docker(
        "    image: \"shop:${VERSON}\"\n    env: { PORT: \"${PORT}\" }\n",
    ));
    assert!(
        e.contains("unknown placeholder `${VERSON}` in `image`; did you mean `${VERSION}`?"),
        "{e}"
    );
    let e = error(&docker(
        "    image: shop:1\n    port: 8080\n    env: { PORT: \"${PORT}\" }\n",
    ));
    assert!(e.starts_with("cutover.yaml:5:5: `port` is the port"), "{e}");
    assert!(e.contains("Add `network: published`"), "{e}");
    let e = error(&docker(
        "    image: shop:1\n    network: published\n    pull: sometimes\n",
    ));
    assert!(
        e.starts_with("cutover.yaml:6:11: `pull` must be `missing`, `always` or `never`"),
        "{e}"
    );
    let e = error(&docker(
        "    image: shop:1\n    network: published\n    host: /var/run/docker.sock\n",
    ));
    assert!(
        e.contains("did you mean `unix:///var/run/docker.sock`?"),
        "{e}"
    );
    let e = error(&docker(
        "    image: shop:1\n    network: published\n    memory: 1MiB\n",
    ));
    assert!(e.contains("`memory` must be at least 6MiB"), "{e}");
    let e = error(&docker(
        "    image: shop:1\n    network: published\n    cpus: 0\n",
    ));
    assert!(
        e.contains("`cpus` must be a number of CPUs greater than 0"),
        "{e}"
    );
    let e = error(&docker(
        "    image: shop:1\n    network: published\n    healthcheck: docker\n",
    ));
    assert!(e.contains("`healthcheck` must be `http` or `image`"), "{e}");
}

#[test]
fn host_networking_needs_the_port_passed_on() {
    let e = error(&docker("    image: shop:1\n"));
    assert!(
        e.starts_with("cutover.yaml:4:12: neither `command` nor `env` uses `${PORT}`"),
        "{e}"
    );
}

#[test]
fn a_docker_field_under_local_says_where_it_belongs() {
    let e = error(&format!("{MINIMAL}    image: shop:1\n"));
    assert!(e.contains("`image` belongs in `platform.docker`"), "{e}");
}

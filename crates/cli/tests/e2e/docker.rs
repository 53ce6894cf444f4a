//! The Docker platform's faults end to end: a deploy whose containers cannot be
//! started says which setting is wrong, and moves no traffic. (The strategies run
//! on Docker in `strategies`.)

use crate::support::{Env, Faults, Platform, assert_no_failures};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_docker_socket_fails_the_first_deploy_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let host = format!("unix://{}/docker.sock", dir.path().display());
    let mut env = Env::on(Platform::Docker { host: host.clone() }, Faults::none());
    env.serve().await;
    let out = env.deploy("v1").await;
    out.code(3);
    assert!(
        out.stdout.contains(&format!(
            "cannot reach the Docker daemon at {host} (platform.docker.host)"
        )),
        "{}",
        out.stdout
    );
    let status = env.api_get("/api/v1/status").await;
    assert!(
        status["backends"].as_array().unwrap().is_empty(),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_fails_the_deploy_and_the_stable_version_keeps_serving() {
    let test = "docker::a_missing_image_fails_the_deploy_and_the_stable_version_keeps_serving";
    let Some(platform) = Platform::docker(test).await else {
        return;
    };
    let mut env = Env::on(platform, Faults::none());
    env.serve().await;
    env.deploy("v1").await.code(0);
    let load = env.load();
    let out = env.deploy("v9").await;
    out.code(3);
    assert!(
        out.stdout.contains(
            "image cutover-e2e-sample:v9 (platform.docker.image) is not on the Docker daemon"
        ),
        "{}",
        out.stdout
    );
    assert_no_failures(&load.stop().await, &["v1"]);
    assert_eq!(env.served_by(10).await, vec!["v1"; 10]);
}

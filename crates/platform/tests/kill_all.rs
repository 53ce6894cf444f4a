//! `kill_all_children` kills every registered process group, grandchildren included.
//! In a test binary of its own: it kills whatever this process started.

mod common;

use std::time::Duration;

use common::{assert_gone, gone, health, read_pids, spec};
use cutover_engine::platform::Platform;
use cutover_platform::{LocalPlatform, kill_all_children};

#[tokio::test]
async fn kill_all_children_kills_every_group_including_grandchildren() {
    let dir = tempfile::tempdir().unwrap();
    let command = [
        "sh",
        "-c",
        r#"sleep 1000 & echo $! >> "pids-$0"; echo $$ >> "pids-$0"; exec python3 -m http.server "$0" --bind 127.0.0.1"#,
        "${PORT}",
    ];
    let mut spec = spec(&command, dir.path());
    spec.instances = 2;
    let platform = LocalPlatform::new(spec, health("/"), dir.path().join("logs"));
    let mut v1 = platform.start("v1").await.unwrap();
    let mut v2 = platform.start("v2").await.unwrap();

    let mut pids = Vec::new();
    for release in [&v1, &v2] {
        for addr in release.health().borrow().ready.clone() {
            pids.extend(read_pids(&dir.path().join(format!("pids-{}", addr.port())), 2).await);
        }
    }
    assert_eq!(pids.len(), 8);
    assert!(pids.iter().all(|p| !gone(*p)));

    kill_all_children();
    for pid in pids {
        assert_gone(pid).await;
    }
    // Stopping afterwards is harmless.
    v1.stop(Duration::from_secs(1)).await;
    v2.stop(Duration::from_secs(1)).await;
}

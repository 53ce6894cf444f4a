//! `kill_all_children` kills every registered process group, grandchildren included.
//! In a test binary of its own: it kills whatever this process started.

mod common;

use std::time::Duration;

use common::{
    WITH_GRANDCHILD, assert_gone, gone, pids_file, platform_with, read_pids, release_spec, spec,
};
use cutover_engine::platform::Platform;
use cutover_platform::kill_all_children;
use cutover_spec::LocalSpec;

#[tokio::test]
async fn kill_all_children_kills_every_group_including_grandchildren() {
    let dir = tempfile::tempdir().unwrap();
    let spec = LocalSpec {
        instances: 2,
        ..spec(WITH_GRANDCHILD, dir.path())
    };
    let platform = platform_with(spec, "/", dir.path());
    let mut v1 = platform
        .start(&release_spec(&platform, "v1"))
        .await
        .unwrap();
    let mut v2 = platform
        .start(&release_spec(&platform, "v2"))
        .await
        .unwrap();

    let mut pids = Vec::new();
    for release in [&v1, &v2] {
        let ready = release.health().borrow().ready.clone();
        for addr in ready {
            pids.extend(read_pids(&pids_file(dir.path(), addr.port()), 2).await);
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

//! `install_panic_hook` kills every child on a panic of the thread that installed
//! it, and only then. In a test binary of its own: the hook is process-wide.

mod common;

use std::time::Duration;

use common::{HTTP_SERVER, assert_gone, gone, platform, start_v1};
use cutover_platform::install_panic_hook;

#[tokio::test]
async fn a_panic_on_the_main_thread_kills_every_child() {
    let dir = tempfile::tempdir().unwrap();
    let platform = platform(HTTP_SERVER, dir.path());
    let (mut release, _, pid) = start_v1(&platform).await;
    install_panic_hook();

    // Another thread's panic: the daemon may well live on, and its children with it.
    assert!(
        std::thread::spawn(|| panic!("expected: a panic on another thread"))
            .join()
            .is_err()
    );
    std::thread::sleep(Duration::from_millis(100));
    assert!(!gone(pid));

    assert!(std::panic::catch_unwind(|| panic!("expected: a panic on the main thread")).is_err());
    assert_gone(pid).await;
    release.stop(Duration::from_secs(1)).await;
}

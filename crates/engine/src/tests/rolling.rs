//! Rolling runs: four instances replaced one at a time within a surge of one and
//! none unavailable, traffic spread over every ready instance, and going back in
//! the same steps in reverse.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use cutover_api::{Event, Outcome, Phase, Role, RunKind};

use super::{Harness, Op, entered, only_stable, share};

const ROLLING: &str = r#"
app: shop
platform:
  local:
    command: ["true", "${PORT}"]
    instances: 4
strategy:
  rolling:
    max_surge: 1
    max_unavailable: 0
    pause: 10s
analysis:
  interval: 10s
  min_requests: 20
  failure_limit: 1
  inconclusive_limit: 3
  metrics:
    error_rate: { max: 1% }
"#;

/// v1 live on four instances; the index in the log where its run ended.
async fn four_of_v1() -> (Harness, usize) {
    let h = Harness::new(ROLLING);
    let first = h.deploy("v1").await;
    assert_eq!(first.outcome, Some(Outcome::Promoted), "{}", first.message);
    assert_eq!(h.fake.instances("v1"), 4);
    let from = h.fake.log().len();
    (h, from)
}

/// After each op of `log`, from the first split with four ready instances on: the
/// ready instances of every version (in the split in force) and the running ones
/// (launched and not yet stopped, ready or not).
fn capacity(log: &[Op]) -> Vec<(usize, usize)> {
    let mut running: HashSet<SocketAddr> = HashSet::new();
    let mut ready = 0;
    let mut out = Vec::new();
    for op in log {
        match op {
            Op::Spawn { addrs, .. } => running.extend(addrs),
            Op::Apply(split) => ready = split.backends.iter().map(|b| b.instances.len()).sum(),
            op => {
                for addr in op.stopped() {
                    running.remove(addr);
                }
            }
        }
        if ready >= 4 || !out.is_empty() {
            out.push((ready, running.len()));
        }
    }
    out
}

/// Asserts that at every point of the log at least four instances were ready and
/// at most five ran.
fn assert_within_bounds(h: &Harness) {
    let log = h.fake.log();
    for (i, (ready, running)) in capacity(&log).into_iter().enumerate() {
        assert!(
            ready >= 4 && running <= 5,
            "{ready} ready, {running} running at step {i}: {log:#?}"
        );
    }
}

/// The instance moves since `from`: `+v2` for instances of v2 launched, `-v1` for
/// instances of v1 taken out.
fn moves(h: &Harness, from: usize) -> Vec<String> {
    h.fake.log()[from..]
        .iter()
        .filter_map(|op| match op {
            Op::Spawn { release, addrs } => Some(format!("+{release}x{}", addrs.len())),
            Op::Detach { release, addrs } => Some(format!("-{release}x{}", addrs.len())),
            _ => None,
        })
        .collect()
}

/// The batches a run entered, in order.
fn batches(h: &Harness, run_id: &str) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for e in h.store.events(run_id).unwrap() {
        if let Event::Phase {
            phase: Phase::Batch { batch, of },
        } = e.event
            && out.last() != Some(&(batch, of))
        {
            out.push((batch, of));
        }
    }
    out
}

#[tokio::test(start_paused = true)]
async fn four_instances_are_replaced_in_four_batches_never_below_four_ready_or_above_five_running()
{
    let (h, from) = four_of_v1().await;
    let mut run = h.start("v2");
    assert_eq!(run.started.kind, RunKind::Rolling);
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Promoted), "{}", end.message);
    assert_eq!(batches(&h, &end.run_id), [(1, 4), (2, 4), (3, 4), (4, 4)]);
    assert_eq!(
        moves(&h, from),
        [
            "+v2x1", "-v1x1", "+v2x1", "-v1x1", "+v2x1", "-v1x1", "+v2x1", "-v1x1"
        ]
    );
    assert_within_bounds(&h);
    // Each batch was judged before the next.
    let steps: HashSet<usize> = h
        .store
        .measurements(&end.run_id)
        .unwrap()
        .iter()
        .map(|m| m.step)
        .collect();
    assert_eq!(steps, HashSet::from([0, 1, 2, 3]));
    // Traffic follows ready instances: one share each, whichever version.
    let splits = h.fake.splits();
    let during: Vec<_> = splits
        .iter()
        .filter(|s| s.get(Role::Canary).is_some())
        .collect();
    assert!(!during.is_empty());
    for split in &during {
        let total: usize = split.backends.iter().map(|b| b.instances.len()).sum();
        for b in &split.backends {
            assert_eq!(b.weight as usize, b.instances.len(), "{split:?}");
        }
        let new = split.get(Role::Canary).unwrap().instances.len();
        assert_eq!(
            usize::from(share(split, "v2")),
            new * 10_000 / total,
            "{split:?}"
        );
    }
    let shares: Vec<u16> = during.iter().map(|s| share(s, "v2")).collect();
    assert!(shares.windows(2).all(|w| w[0] <= w[1]), "{shares:?}");
    for bp in [2_000, 5_000, 10_000] {
        assert!(shares.contains(&bp), "{bp} never applied: {shares:?}");
    }
    let last = h.fake.last_split();
    assert_eq!(only_stable(&last), Some("v2"));
    assert_eq!(last.backends[0].instances.len(), 4);
    assert_eq!(h.fake.running(), HashSet::from(["v2".to_string()]));
    h.fake.assert_routed_away_before_stop("v1");
}

#[tokio::test(start_paused = true)]
async fn an_erroring_new_version_is_rolled_back_batch_by_batch_in_reverse() {
    let (h, from) = four_of_v1().await;
    let mut run = h.start("v2");
    run.until(entered(Phase::Batch { batch: 2, of: 4 })).await;
    h.fake.erroring("v2", Role::Canary, 0.2);
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::RolledBack), "{}", end.message);
    assert!(
        end.message.contains("error_rate") && end.message.contains("20.00%"),
        "{}",
        end.message
    );
    // Two batches forward, then back in the same steps: an old instance ready
    // before each new one leaves.
    assert_eq!(
        moves(&h, from),
        [
            "+v2x1", "-v1x1", "+v2x1", "-v1x1", "+v1x1", "-v2x1", "+v1x1", "-v2x1"
        ]
    );
    assert_within_bounds(&h);
    let last = h.fake.last_split();
    assert_eq!(only_stable(&last), Some("v1"));
    assert_eq!(last.backends[0].instances.len(), 4);
    assert_eq!(h.fake.instances("v1"), 4);
    assert_eq!(h.fake.running(), HashSet::from(["v1".to_string()]));
    h.fake.assert_routed_away_before_stop("v2");
}

#[tokio::test(start_paused = true)]
async fn abort_mid_way_goes_back_batch_by_batch() {
    let (h, from) = four_of_v1().await;
    let mut run = h.start("v2");
    run.until(entered(Phase::Batch { batch: 3, of: 4 })).await;
    h.engine.abort("a test").unwrap();
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Aborted), "{}", end.message);
    assert!(end.message.contains("a test"), "{}", end.message);
    // The third batch finishes its move, then every batch goes back.
    assert_eq!(
        moves(&h, from),
        [
            "+v2x1", "-v1x1", "+v2x1", "-v1x1", "+v2x1", "-v1x1", // forward
            "+v1x1", "-v2x1", "+v1x1", "-v2x1", "+v1x1", "-v2x1", // back
        ]
    );
    assert_within_bounds(&h);
    assert_eq!(only_stable(&h.fake.last_split()), Some("v1"));
    assert_eq!(h.fake.instances("v1"), 4);
    assert_eq!(h.fake.running(), HashSet::from(["v1".to_string()]));
    h.fake.assert_routed_away_before_stop("v2");
}

/// Regression: the executor waited for a change of its releases' health on
/// clones of the routing's receivers, which start where those last looked (at
/// the release's start). Once a release had changed (a rolling batch), the wait
/// woke at once, forever: the run's task spun without yielding, and the daemon
/// with it. Run on a runtime of its own with a deadline in real time, so that the
/// spin fails this test instead of hanging it.
#[tokio::test(start_paused = true)]
async fn a_run_does_not_spin_once_its_releases_changed_health() {
    let (done, ended) = std::sync::mpsc::channel();
    let _spinning = super::on_own_runtime(move || async move {
        let (h, _) = four_of_v1().await;
        let _ = done.send(h.deploy("v2").await.outcome);
    });
    let outcome = ended
        .recv_timeout(Duration::from_secs(60))
        .expect("the rolling run never ended: its task spins");
    assert_eq!(outcome, Some(Outcome::Promoted));
}

/// Regression: an abort while the first new instances were starting cancelled
/// that start but left it pending, so going back waited for it forever.
#[tokio::test(start_paused = true)]
async fn abort_while_the_first_batch_starts_goes_back_at_once() {
    let (h, _) = four_of_v1().await;
    let mut run = h.start("v2");
    run.until(entered(Phase::Batch { batch: 1, of: 4 })).await;
    // The fake takes 500ms to start; abort before that.
    h.engine.abort("a test").unwrap();
    let end = run.end().await;
    assert_eq!(end.outcome, Some(Outcome::Aborted), "{}", end.message);
    assert_eq!(only_stable(&h.fake.last_split()), Some("v1"));
    assert_eq!(h.fake.instances("v1"), 4);
    assert_eq!(h.fake.running(), HashSet::from(["v1".to_string()]));
}

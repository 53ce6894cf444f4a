//! Where cutover remembers: runs, their events, analysis measurements and outcomes,
//! in one SQLite file in the state directory.
//!
//! The engine writes every transition here *before* acting on it, so a restarted
//! daemon can tell what was in flight. Nothing here knows about HTTP, processes or
//! tokio; calls are short and synchronous (one small transaction each).
//!
//! ```
//! use cutover_store::{NewRun, RunKind, Store};
//! let store = Store::open_in_memory().unwrap();
//! store.insert_run(&NewRun { id: "r1".into(), app: "shop".into(), version: "v2".into(),
//!     stable: Some("v1".into()), kind: RunKind::Canary, started_at_ms: 0,
//!     config: "app: shop".into() }).unwrap();
//! assert_eq!(store.unfinished_runs("shop").unwrap().len(), 1);
//! ```

mod records;
mod sqlite;

pub use records::*;
pub use sqlite::{OUTCOME_EVENT, Store, StoreError};

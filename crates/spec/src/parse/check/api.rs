//! `api`: who may read the daemon's HTTP API.

use super::Checker;
use crate::parse::node::Entry;
use crate::types::ApiSpec;

pub(super) const API: &[&str] = &["read_auth", "allow_remote_open_reads"];

impl Checker<'_> {
    pub(super) fn api(&mut self, e: &Entry) -> Option<ApiSpec> {
        let f = self.fields(&e.value, "api", API)?;
        let d = ApiSpec::default();
        let read_auth = self.optional(&f, "read_auth", d.read_auth, Self::boolean);
        let allow_remote_open_reads = self.optional(
            &f,
            "allow_remote_open_reads",
            d.allow_remote_open_reads,
            Self::boolean,
        );
        Some(ApiSpec {
            read_auth: read_auth?,
            allow_remote_open_reads: allow_remote_open_reads?,
        })
    }
}

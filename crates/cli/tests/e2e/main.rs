//! End to end through the real `cutover` binary: a real daemon, real sample-app
//! processes, real HTTP on 127.0.0.1 with OS-assigned ports, a real SQLite file.
//! Nothing here sleeps to let things settle; every wait is for a condition, with a
//! deadline. One test binary, one module per topic. The strategies run on local
//! processes and on Docker containers alike (a private dockerd, see
//! `crates/platform/tests/common/docker.rs`; without one they say SKIPPED).

mod api;
mod canary;
mod cli;
mod config;
mod dashboard;
mod docker;
#[path = "../../../platform/tests/common/docker.rs"]
mod docker_image;
mod judge;
mod logs;
mod pipeline;
mod prometheus;
mod restart;
mod sse;
mod strategies;
mod support;

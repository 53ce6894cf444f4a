//! Picking free ports on 127.0.0.1 for instances to listen on.

use std::net::{Ipv4Addr, TcpListener};

/// A free port, other than `taken`.
///
/// This only makes a collision unlikely, not impossible: the listener is closed
/// before the instance binds the port, and in between another process may bind it
/// too, or take it as the local port of an outgoing connection (the proxy's
/// included: they come from the same ephemeral range). An instance that then fails
/// to bind and exits saying so is retried once on another port during startup (see
/// `SupervisedRelease::wait_ready`), and restarted with a backoff later on (see
/// `instance`). What remains: a process that binds the port and serves the health
/// path before the instance starts would make the instance look ready while it is
/// failing; it would then exit and be restarted. Reserving the port for real needs
/// the instance to take an inherited socket (systemd-style socket activation),
/// which commands cannot be assumed to support.
pub(crate) fn free_port_except(taken: &[u16]) -> std::io::Result<u16> {
    for _ in 0..16 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        if !taken.contains(&port) {
            return Ok(port);
        }
    }
    Err(std::io::Error::other("every port offered was taken"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_except_avoids_the_taken_ones() {
        let taken: Vec<u16> = (0..3).map(|_| free_port_except(&[]).unwrap()).collect();
        for _ in 0..20 {
            assert!(!taken.contains(&free_port_except(&taken).unwrap()));
        }
    }
}

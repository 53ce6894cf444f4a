//! The signature of a webhook's body, so that its receiver can tell the request came
//! from this cutover and was not replayed, the way Stripe and GitHub sign theirs.
//!
//! With a `secret` (or `secret_env`) configured, every attempt carries two headers:
//!
//! - `X-Cutover-Timestamp`: the attempt's time in whole seconds since the Unix epoch;
//! - `X-Cutover-Signature`: `sha256=` and the lowercase hex HMAC-SHA256, keyed with
//!   the secret, of the timestamp, a `.`, and the raw body bytes.
//!
//! A receiver recomputes the HMAC over `<X-Cutover-Timestamp>.<body>` with the same
//! secret, compares it with the header in constant time, and refuses a timestamp too
//! far from its own clock (five minutes is customary) so that a captured request
//! cannot be replayed later. In a shell:
//!
//! ```text
//! printf '%s.%s' "$timestamp" "$body" | openssl dgst -sha256 -hmac "$secret"
//! ```

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header with the attempt's Unix time in seconds.
pub const TIMESTAMP_HEADER: &str = "X-Cutover-Timestamp";
/// The header with `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "X-Cutover-Signature";

/// `sha256=<hex of HMAC-SHA256(key, "<timestamp>.<body>")>`.
pub fn sign(key: &[u8], timestamp: u64, body: &[u8]) -> String {
    let mut message = format!("{timestamp}.").into_bytes();
    message.extend_from_slice(body);
    format!("sha256={}", hmac_sha256_hex(key, &message))
}

fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    // HMAC takes keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(message);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // RFC 4231, test case 2.
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_signature_covers_the_timestamp_and_the_body() {
        let signed = sign(b"key", 1_700_000_000, br#"{"event":"promoted"}"#);
        assert_eq!(
            signed,
            format!(
                "sha256={}",
                hmac_sha256_hex(b"key", br#"1700000000.{"event":"promoted"}"#)
            )
        );
        assert_ne!(
            signed,
            sign(b"key", 1_700_000_001, br#"{"event":"promoted"}"#)
        );
        assert_ne!(
            signed,
            sign(b"key", 1_700_000_000, br#"{"event":"rolled_back"}"#)
        );
        assert_ne!(
            signed,
            sign(b"other", 1_700_000_000, br#"{"event":"promoted"}"#)
        );
    }
}

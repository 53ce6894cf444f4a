//! What a version name may be: it names processes, files, cookies and headers.

/// The rule, in words, for messages.
pub const VERSION_RULE: &str = "1 to 64 characters of letters, digits, `.`, `_` and `-`";

/// Whether `version` is a valid version name.
pub fn valid_version(version: &str) -> bool {
    !version.is_empty()
        && version.len() <= 64
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions() {
        assert!(super::valid_version("v1.4.0-rc_2"));
        for bad in ["", "v1+baseline", "v 1", "ä", &"x".repeat(65)] {
            assert!(!super::valid_version(bad), "{bad:?}");
        }
    }
}

//! Numbers as people read them, made where they are shown.

/// Basis points as a percentage, `12.5%`.
pub fn format_bp(bp: u16) -> String {
    if bp.is_multiple_of(100) {
        format!("{}%", bp / 100)
    } else {
        format!("{:.2}%", f64::from(bp) / 100.0)
    }
}

/// `2026-11-24T20:15:03.123Z` for a millisecond timestamp.
pub fn format_ms(at_ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(at_ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_and_timestamps() {
        assert_eq!(format_bp(1_000), "10%");
        assert_eq!(format_bp(1_250), "12.50%");
        assert_eq!(format_ms(1_764_015_303_123), "2025-11-24T20:15:03.123Z");
    }
}

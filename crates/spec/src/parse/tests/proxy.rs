use super::*;

/// `MINIMAL` with `proxy:` set to `section` (indented by the caller).
fn with_proxy(section: &str) -> String {
    format!("{MINIMAL}proxy:\n{section}")
}

/// The `proxy.max_body_size` of `max_body_size: {v}`.
fn body_size(v: &str) -> Result<Option<u64>, String> {
    match parse(
        &with_proxy(&format!("  max_body_size: {v}\n")),
        "cutover.yaml",
    ) {
        Ok(c) => Ok(c.proxy.max_body_size),
        Err(e) => {
            assert_eq!(e.diagnostics.len(), 1, "{e}");
            Err(e.to_string())
        }
    }
}

#[test]
fn proxy_defaults() {
    let c = ok(MINIMAL);
    assert_eq!(c.proxy, ProxySpec::default());
    assert_eq!(c.proxy.max_header_size, 64 * 1024);
    assert_eq!(c.proxy.header_read_timeout, secs(10));
    assert_eq!(c.proxy.idle_timeout, secs(60));
    assert_eq!(c.proxy.max_connections, 10_000);
    assert_eq!(c.proxy.max_requests_per_instance, 0);
    assert_eq!(c.proxy.max_body_size, None);
    assert_eq!(c.proxy.threads, 0);
    assert_eq!(c.proxy.tunnel_idle_timeout, Some(secs(3600)));
    // An empty section is all defaults too.
    assert_eq!(ok(&with_proxy("")).proxy, ProxySpec::default());
    assert_eq!(
        ok(&format!("{MINIMAL}proxy: {{}}\n")).proxy,
        ProxySpec::default()
    );
}

#[test]
fn sizes_are_bytes_or_binary_units() {
    assert_eq!(body_size("none"), Ok(None));
    assert_eq!(body_size("1"), Ok(Some(1)));
    assert_eq!(body_size("65536"), Ok(Some(65_536)));
    assert_eq!(body_size("512B"), Ok(Some(512)));
    assert_eq!(body_size("64KiB"), Ok(Some(64 * 1024)));
    assert_eq!(body_size("64 KiB"), Ok(Some(64 * 1024)));
    assert_eq!(body_size("\"10MiB\""), Ok(Some(10 << 20)));
    assert_eq!(body_size("2GiB"), Ok(Some(2 << 30)));
    let h = ok(&with_proxy("  max_header_size: 1KiB\n")).proxy;
    assert_eq!(h.max_header_size, 1024);
    let h = ok(&with_proxy("  max_header_size: 1MiB\n")).proxy;
    assert_eq!(h.max_header_size, 1 << 20);
}

#[test]
fn size_mistakes_say_what_would_be_valid() {
    let expected = "must be a number of bytes like `65536`, or a size like `64KiB` or `1MiB` \
                    (units: B, KiB, MiB, GiB)";
    let e = body_size("64KB").unwrap_err();
    assert_eq!(
        e,
        format!("cutover.yaml:6:18: `max_body_size` {expected}, got `64KB`; did you mean `64KiB`?")
    );
    assert!(
        body_size("1m")
            .unwrap_err()
            .ends_with("did you mean `1MiB`?")
    );
    assert!(body_size("-1").unwrap_err().contains(expected));
    assert!(body_size("big").unwrap_err().contains("got `big`"));
    assert!(
        body_size("99999999999GiB")
            .unwrap_err()
            .ends_with("that is too large")
    );
    assert_eq!(
        body_size("0").unwrap_err(),
        "cutover.yaml:6:18: `max_body_size` must be `none` (no limit) or at least 1B, got `0`"
    );
    assert_eq!(
        error(&with_proxy("  max_header_size: 512B\n")),
        "cutover.yaml:6:20: `max_header_size` must be from 1KiB to 1MiB, got `512B`"
    );
    assert!(error(&with_proxy("  max_header_size: 2MiB\n")).contains("must be from 1KiB to 1MiB"));
}

#[test]
fn proxy_mistakes_are_reported_where_they_are() {
    assert_eq!(
        error(&with_proxy("  header_read_timeout: 0s\n")),
        "cutover.yaml:6:24: `header_read_timeout` must be longer than 0s, got `0s`"
    );
    assert!(
        error(&with_proxy("  idle_timeout: 60\n"))
            .starts_with("cutover.yaml:6:17: invalid duration `60`")
    );
    assert_eq!(
        error(&with_proxy("  max_connections: -1\n")),
        "cutover.yaml:6:20: `max_connections` must be a whole number (0 or more), got `-1`"
    );
    assert!(
        error(&with_proxy("  max_requests_per_instance: lots\n"))
            .contains("`max_requests_per_instance` must be a whole number")
    );
    assert_eq!(ok(&with_proxy("  threads: 2\n")).proxy.threads, 2);
    assert_eq!(
        error(&with_proxy("  threads: 300\n")),
        "cutover.yaml:6:12: `threads` must be a whole number from 0 to 256, got `300`"
    );
    assert_eq!(
        ok(&with_proxy("  tunnel_idle_timeout: 5m\n"))
            .proxy
            .tunnel_idle_timeout,
        Some(secs(300))
    );
    assert_eq!(
        ok(&with_proxy("  tunnel_idle_timeout: none\n"))
            .proxy
            .tunnel_idle_timeout,
        None
    );
    assert_eq!(
        error(&with_proxy("  tunnel_idle_timeout: 0s\n")),
        "cutover.yaml:6:24: `tunnel_idle_timeout` must be longer than 0s, got `0s`"
    );
    let typo = error(&with_proxy("  idle_timout: 5s\n"));
    assert!(
        typo.starts_with(
            "cutover.yaml:6:3: unknown field `idle_timout` in `proxy`; did you mean `idle_timeout`?"
        ),
        "{typo}"
    );
    let misplaced = error(&format!("{MINIMAL}max_connections: 5\n"));
    assert!(
        misplaced.contains("`max_connections` belongs in `proxy`"),
        "{misplaced}"
    );
    assert!(
        error(&format!("{MINIMAL}proxy: 5\n")).contains("`proxy` must be a mapping of settings")
    );
    // Every mistake at once.
    let all = errors(&with_proxy("  max_connections: x\n  max_body_size: 1 KB\n"));
    assert_eq!(all.len(), 2, "{all:#?}");
}

//! Query templates: `{{version}}`, `{{role}}`, `{{app}}` and `{{interval}}`
//! filled in for one window.

use std::time::Duration;

/// What a window's queries are about.
#[derive(Debug, Clone)]
pub(crate) struct At {
    pub(crate) app: String,
    pub(crate) version: String,
    pub(crate) role: String,
    /// The window's length.
    pub(crate) interval: Duration,
    /// The window's end, in seconds since the Unix epoch.
    pub(crate) end_unix: f64,
}

impl At {
    /// `template` with its placeholders filled in.
    pub(crate) fn render(&self, template: &str) -> String {
        template
            .replace("{{version}}", &self.version)
            .replace("{{role}}", &self.role)
            .replace("{{app}}", &self.app)
            .replace("{{interval}}", &promql_duration(self.interval))
    }
}

/// A duration as PromQL writes one: whole milliseconds, at least one.
pub(crate) fn promql_duration(d: Duration) -> String {
    let ms = d.as_millis().max(1);
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_in_and_the_interval_is_a_promql_duration() {
        let at = At {
            app: "shop".into(),
            version: "v2".into(),
            role: "canary".into(),
            interval: Duration::from_millis(5_250),
            end_unix: 0.0,
        };
        assert_eq!(
            at.render(r#"x{app="{{app}}",version="{{version}}",role="{{role}}"}[{{interval}}]"#),
            r#"x{app="shop",version="v2",role="canary"}[5250ms]"#
        );
        assert_eq!(promql_duration(Duration::from_secs(5)), "5s");
        assert_eq!(promql_duration(Duration::ZERO), "1ms");
    }
}

//! The chart in `canary-analysis.svg`: the canary's error rate and p95 latency
//! beside its baseline's, window by window, with step changes and the decision
//! marked. Plain SVG, no script, so it renders wherever the Markdown does.

use std::fmt::Write as _;

/// One window's values for the chart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Seconds since the run started.
    pub at_s: f64,
    /// The canary step (or batch) the window belongs to.
    pub step: usize,
    pub canary_error_rate: Option<f64>,
    pub baseline_error_rate: Option<f64>,
    pub canary_p95_ms: Option<f64>,
    pub baseline_p95_ms: Option<f64>,
}

/// A panel: its title, the (canary, baseline) values of a point, the axis label.
type Panel = (
    &'static str,
    fn(&Point) -> (Option<f64>, Option<f64>),
    fn(f64) -> String,
);

const WIDTH: f64 = 720.0;
const PANEL: f64 = 150.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const GAP: f64 = 44.0;
const CANARY: &str = "#d9480f";
const BASELINE: &str = "#495057";

/// The chart of `points`, with `decision` (e.g. `rolled back`) written at the
/// last window.
pub fn render(points: &[Point], decision: &str) -> String {
    let height = TOP + 2.0 * PANEL + GAP + 36.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    svg.push_str(r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = write!(
        svg,
        r#"<text x="{LEFT}" y="16" font-size="12"><tspan fill="{CANARY}">&#9632; canary</tspan>  <tspan fill="{BASELINE}">&#9632; baseline</tspan></text>"#
    );
    let span = points.last().map_or(1.0, |p| p.at_s.max(1.0));
    let x = |at: f64| LEFT + (WIDTH - LEFT - RIGHT) * at / span;
    let panels: [Panel; 2] = [
        (
            "error rate",
            |p| (p.canary_error_rate, p.baseline_error_rate),
            |v| format!("{:.1}%", v * 100.0),
        ),
        (
            "p95 latency",
            |p| (p.canary_p95_ms, p.baseline_p95_ms),
            |v| format!("{v:.0}ms"),
        ),
    ];
    for (i, (title, values, label)) in panels.iter().enumerate() {
        let top = TOP + i as f64 * (PANEL + GAP);
        let max = points
            .iter()
            .flat_map(|p| {
                let (c, b) = values(p);
                [c, b]
            })
            .flatten()
            .fold(0.0, f64::max);
        let max = if max > 0.0 { max * 1.1 } else { 1.0 };
        let y = |v: f64| top + PANEL - PANEL * v / max;
        let _ = write!(
            svg,
            r##"<rect x="{LEFT}" y="{top}" width="{}" height="{PANEL}" fill="none" stroke="#dee2e6"/><text x="{LEFT}" y="{}" font-weight="bold">{title}</text><text x="{}" y="{}" text-anchor="end">{}</text><text x="{}" y="{}" text-anchor="end">0</text>"##,
            WIDTH - LEFT - RIGHT,
            top - 6.0,
            LEFT - 4.0,
            top + 10.0,
            label(max),
            LEFT - 4.0,
            top + PANEL,
        );
        for pair in points.windows(2) {
            if pair[1].step != pair[0].step {
                let _ = write!(
                    svg,
                    r##"<line x1="{0:.1}" x2="{0:.1}" y1="{top}" y2="{1}" stroke="#adb5bd" stroke-dasharray="3 3"/>"##,
                    x(pair[1].at_s),
                    top + PANEL
                );
            }
        }
        for (pick, colour) in [(0, BASELINE), (1, CANARY)] {
            let line: Vec<String> = points
                .iter()
                .filter_map(|p| {
                    let (c, b) = values(p);
                    let v = if pick == 1 { c } else { b };
                    v.map(|v| format!("{:.1},{:.1}", x(p.at_s), y(v)))
                })
                .collect();
            if !line.is_empty() {
                let _ = write!(
                    svg,
                    r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
                    line.join(" ")
                );
            }
        }
    }
    if let Some(last) = points.last() {
        let bottom = TOP + 2.0 * PANEL + GAP;
        let _ = write!(
            svg,
            r##"<line x1="{0:.1}" x2="{0:.1}" y1="{TOP}" y2="{bottom}" stroke="#212529" stroke-width="1.5"/><text x="{0:.1}" y="{1}" text-anchor="end" font-weight="bold">{2}</text>"##,
            x(last.at_s),
            bottom + 16.0,
            escape(decision)
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{LEFT}" y="{}">0 s</text><text x="{}" y="{}" text-anchor="middle">{span:.0} s</text></svg>"#,
        TOP + 2.0 * PANEL + GAP + 16.0,
        WIDTH - RIGHT - 20.0,
        TOP + 2.0 * PANEL + GAP + 30.0,
    );
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(at_s: f64, step: usize, canary: f64) -> Point {
        Point {
            at_s,
            step,
            canary_error_rate: Some(canary),
            baseline_error_rate: Some(0.005),
            canary_p95_ms: Some(30.0),
            baseline_p95_ms: None,
        }
    }

    #[test]
    fn it_draws_both_versions_the_steps_and_the_decision() {
        let svg = render(
            &[
                point(5.0, 0, 0.01),
                point(10.0, 0, 0.02),
                point(15.0, 1, 0.2),
            ],
            "rolled back <at once>",
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        // Error rate: canary and baseline; p95: the canary only.
        assert_eq!(svg.matches("<polyline").count(), 3);
        // One step change, dashed in both panels.
        assert_eq!(svg.matches("stroke-dasharray").count(), 2);
        assert!(svg.contains("rolled back &lt;at once&gt;"));
        assert!(svg.contains("22.0%"), "the error axis tops out above 20%");
    }

    #[test]
    fn no_windows_is_an_empty_chart() {
        let svg = render(&[], "promoted");
        assert!(!svg.contains("<polyline") && !svg.contains("promoted"));
    }
}

//! A writer of Prometheus' text exposition format (version 0.0.4): families with
//! their `# HELP` and `# TYPE`, samples with escaped labels, histograms with
//! cumulative buckets. Small on purpose: the daemon only writes what it already
//! knows, so a metrics library's registry would add nothing but build time.

use std::fmt::Write as _;

/// The content type of the format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The type of a metric family.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Label names and values of one sample.
pub(crate) type Labels<'a> = &'a [(&'a str, &'a str)];

/// Metric families being written, one after the other.
#[derive(Default)]
pub(crate) struct Exposition {
    out: String,
}

impl Exposition {
    /// Starts a family: its help and type. Its samples follow, before the next family.
    pub(crate) fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let help = help.replace('\\', r"\\").replace('\n', r"\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample of the family being written (`name` with its suffix, if any).
    pub(crate) fn sample(&mut self, name: &str, labels: Labels<'_>, value: f64) {
        self.out.push_str(name);
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {}", number(value));
    }

    /// The samples of one histogram: `buckets` as (upper bound, how many were at
    /// most that), ascending, then `+Inf`, the sum and the count.
    pub(crate) fn histogram(
        &mut self,
        name: &str,
        labels: Labels<'_>,
        buckets: &[(f64, u64)],
        sum: f64,
        count: u64,
    ) {
        for (bound, cumulative) in buckets {
            self.bucket(name, labels, &number(*bound), *cumulative);
        }
        self.bucket(name, labels, "+Inf", count);
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, count as f64);
    }

    fn bucket(&mut self, name: &str, labels: Labels<'_>, le: &str, cumulative: u64) {
        let _ = write!(self.out, "{name}_bucket");
        write_labels(&mut self.out, labels, Some(le));
        let _ = writeln!(self.out, " {cumulative}");
    }

    pub(crate) fn finish(self) -> String {
        self.out
    }
}

fn write_labels(out: &mut String, labels: Labels<'_>, le: Option<&str>) {
    let le = le.map(|le| ("le", le));
    let mut all = labels.iter().copied().chain(le).peekable();
    if all.peek().is_none() {
        return;
    }
    out.push('{');
    for (i, (name, value)) in all.enumerate() {
        if i > 0 {
            out.push(',');
        }
        let value = value
            .replace('\\', r"\\")
            .replace('"', "\\\"")
            .replace('\n', r"\n");
        let _ = write!(out, "{name}=\"{value}\"");
    }
    out.push('}');
}

/// A sample value as the format spells it: `+Inf`, `-Inf`, `NaN`, or the number.
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value == f64::INFINITY {
        "+Inf".to_owned()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        value.to_string()
    }
}

/// Observations counted into fixed buckets, for a histogram family.
#[derive(Debug, Clone)]
pub(crate) struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative), one per bound.
    counts: Vec<u64>,
    above: u64,
    sum: f64,
}

impl Histogram {
    /// An empty histogram over `bounds`, ascending.
    pub(crate) fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            above: 0,
            sum: 0.0,
        }
    }

    pub(crate) fn observe(&mut self, value: f64) {
        match self.bounds.iter().position(|b| value <= *b) {
            Some(i) => self.counts[i] += 1,
            None => self.above += 1,
        }
        self.sum += value;
    }

    /// Writes it as the histogram `name` with `labels`.
    pub(crate) fn write(&self, out: &mut Exposition, name: &str, labels: Labels<'_>) {
        let mut cumulative = 0;
        let buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .zip(&self.counts)
            .map(|(bound, n)| {
                cumulative += n;
                (*bound, cumulative)
            })
            .collect();
        out.histogram(name, labels, &buckets, self.sum, cumulative + self.above);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_escaped_labels() {
        let mut out = Exposition::default();
        out.family("cutover_x_total", Kind::Counter, "What\nit \\ counts.");
        out.sample("cutover_x_total", &[], 3.0);
        out.sample(
            "cutover_x_total",
            &[("app", "shop"), ("version", "a\"b\\c\nd")],
            0.5,
        );
        out.family("cutover_y", Kind::Gauge, "A gauge.");
        out.sample("cutover_y", &[("app", "shop")], f64::INFINITY);
        assert_eq!(
            out.finish(),
            "# HELP cutover_x_total What\\nit \\\\ counts.\n\
             # TYPE cutover_x_total counter\n\
             cutover_x_total 3\n\
             cutover_x_total{app=\"shop\",version=\"a\\\"b\\\\c\\nd\"} 0.5\n\
             # HELP cutover_y A gauge.\n\
             # TYPE cutover_y gauge\n\
             cutover_y{app=\"shop\"} +Inf\n"
        );
    }

    #[test]
    fn a_histogram_has_cumulative_buckets_inf_sum_and_count() {
        let mut h = Histogram::new(&[0.5, 1.0, 2.5]);
        for v in [0.25, 0.5, 0.75, 3.0, 10.0] {
            h.observe(v);
        }
        let mut out = Exposition::default();
        out.family("d_seconds", Kind::Histogram, "Durations.");
        h.write(&mut out, "d_seconds", &[("stage", "step")]);
        assert_eq!(
            out.finish(),
            "# HELP d_seconds Durations.\n\
             # TYPE d_seconds histogram\n\
             d_seconds_bucket{stage=\"step\",le=\"0.5\"} 2\n\
             d_seconds_bucket{stage=\"step\",le=\"1\"} 3\n\
             d_seconds_bucket{stage=\"step\",le=\"2.5\"} 3\n\
             d_seconds_bucket{stage=\"step\",le=\"+Inf\"} 5\n\
             d_seconds_sum{stage=\"step\"} 14.5\n\
             d_seconds_count{stage=\"step\"} 5\n"
        );
    }
}

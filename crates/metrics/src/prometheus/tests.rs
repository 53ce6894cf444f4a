//! Against a real Prometheus (Debian's `prometheus`, started here on 127.0.0.1
//! with an empty scrape config): its answers to good and bad PromQL, instant
//! and over a range.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use cutover_spec::MetricSource;

use super::*;
use crate::check::{QueryCheck, check_queries};
use crate::real_prometheus::RealPrometheus;
use crate::testing::{config, window};

fn prometheus(addr: SocketAddr, queries: &str) -> (cutover_spec::Config, Prometheus) {
    let yaml = format!(
        "    prometheus:\n      url: http://${{env:PROM_HOST}}\n      timeout: 2s\n{queries}"
    );
    let host = addr.to_string();
    let config = config(&yaml, &[("PROM_HOST", host.as_str())]);
    let MetricSource::Prometheus(spec) = &config.analysis.source else {
        panic!("a Prometheus source")
    };
    let reader = Prometheus::new(spec);
    (config, reader)
}

#[tokio::test]
async fn the_server_s_answers_are_numbers_missing_series_nan_or_its_refusal() {
    let Some(server) = RealPrometheus::start(None).await else {
        return;
    };
    let (_, p) = prometheus(server.addr(), "");
    assert_eq!(p.instant("scalar(vector(2.5))", None).await, Ok(2.5));
    assert_eq!(p.instant("sum(vector(1) * 4)", None).await, Ok(4.0));
    assert_eq!(
        p.instant(r#"cutover_proxy_requests_total{app="nobody"}"#, None)
            .await,
        Err(SourceFault::MissingSeries)
    );
    assert_eq!(
        p.instant("vector(0) / 0", None).await,
        Err(SourceFault::NaN)
    );
    let Err(SourceFault::Query { message }) = p.instant("sum(rate(x[5m]", None).await else {
        panic!("a syntax error is the server's refusal")
    };
    assert!(message.contains("parse error"), "{message}");
    let Err(SourceFault::Invalid { message }) = p
        .instant(
            "vector(1) or label_replace(vector(2), \"a\", \"b\", \"\", \"\")",
            None,
        )
        .await
    else {
        panic!("two series are not one number")
    };
    assert!(message.contains("2 series"), "{message}");
}

#[tokio::test]
async fn validate_names_the_field_of_a_refused_query_with_the_server_s_message() {
    let Some(server) = RealPrometheus::start(None).await else {
        return;
    };
    let queries = "      queries:\n        latency_p99: \"histogram_quantile(0.99, sum by (le) (rate(x_bucket{version=\\\"{{version}}\\\"}[{{interval}}])\"\n";
    let (config, _) = prometheus(server.addr(), queries);
    let QueryCheck::Refused { refused, url } = check_queries(&config).await else {
        panic!("the server refuses the unbalanced query")
    };
    assert_eq!(
        url, "http://${env:PROM_HOST}",
        "the URL as written, never as resolved"
    );
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(
        refused[0].0,
        "analysis.source.prometheus.queries.latency_p99"
    );
    assert!(refused[0].1.contains("parse error"), "{:?}", refused[0]);
    let (config, _) = prometheus(server.addr(), "");
    assert_eq!(
        check_queries(&config).await,
        QueryCheck::Accepted {
            url: "http://${env:PROM_HOST}".into(),
            queries: 5
        }
    );
}

#[tokio::test]
async fn an_unreachable_server_is_a_fault_and_validate_says_it_could_not_check() {
    // A port nothing listens on: bound, then let go.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (config, p) = prometheus(addr, "");
    let fault = crate::window::sample(&p, &window()).await.unwrap_err();
    assert_eq!(fault.field, "analysis.source.prometheus.queries.requests");
    assert!(
        matches!(fault.fault, SourceFault::Unreachable { .. }),
        "{fault}"
    );
    assert!(matches!(
        check_queries(&config).await,
        QueryCheck::Unreachable { .. }
    ));
}

#[test]
fn a_window_s_points_end_at_its_end_each_covering_a_step() {
    let mut at = window();
    at.end_unix = 1_000.0;
    at.interval = Duration::from_millis(10_500);
    let points = Points::over(&at, Duration::from_secs(2));
    // Five whole steps fit: points at 992, 994, ..., 1000, each covering 2 s.
    assert_eq!(points.start_unix, 992.0);
    assert_eq!(points.end_unix, 1_000.0);
    assert_eq!(points.covers, Duration::from_secs(2));
    at.interval = Duration::from_secs(1);
    let short = Points::over(&at, Duration::from_secs(2));
    assert_eq!((short.start_unix, short.end_unix), (1_000.0, 1_000.0));
    assert_eq!(
        short.covers,
        Duration::from_secs(1),
        "one point, the window"
    );
}

#[test]
fn a_count_s_points_add_up_and_a_level_s_average_leaving_nan_out() {
    assert_eq!(reduce(Measure::Count, &[3.0, 4.0, 5.0]), Ok(12.0));
    assert_eq!(reduce(Measure::Level, &[0.1, f64::NAN, 0.3]), Ok(0.2));
    assert_eq!(reduce(Measure::Level, &[f64::NAN]), Err(SourceFault::NaN));
}

#[tokio::test]
async fn range_queries_read_the_window_step_by_step_and_reduce_its_points() {
    let Some(server) = RealPrometheus::start(None).await else {
        return;
    };
    let step = "      range_step: 2s\n";
    let (_, p) = prometheus(server.addr(), step);
    let mut at = window();
    at.interval = Duration::from_secs(10);
    // Five points, at the window's end and every 2 s back.
    let one = "sum(vector(1))".to_owned();
    assert_eq!(p.read(&one, Measure::Count, &at).await, Ok(5.0));
    assert_eq!(p.read(&one, Measure::Level, &at).await, Ok(1.0));
    // time() at each point: their mean is the middle one, 4 s before the end.
    let mean = p
        .read(&"time()".to_owned(), Measure::Level, &at)
        .await
        .unwrap();
    let middle = (at.end_unix * 1000.0).round() / 1000.0 - 4.0;
    assert!((mean - middle).abs() < 0.01, "{mean} vs {middle}");
    // `{{interval}}` is the step: each point counts the seconds it covers.
    let covers = p
        .read(
            &"sum(count_over_time(vector(1)[{{interval}}:1s]))".to_owned(),
            Measure::Level,
            &at,
        )
        .await
        .unwrap();
    // Two samples a point (three where the range's start counts too), not the
    // window's ten.
    assert!(
        (2.0..=3.0).contains(&covers),
        "each point covers its 2 s step: {covers}"
    );
    assert_eq!(
        p.read(
            &r#"cutover_proxy_requests_total{app="nobody"}"#.to_owned(),
            Measure::Count,
            &at
        )
        .await,
        Err(SourceFault::MissingSeries)
    );
    let Err(SourceFault::Query { message }) = p
        .read(&"sum(rate(x[5m]".to_owned(), Measure::Count, &at)
        .await
    else {
        panic!("a syntax error is the server's refusal, in range queries too")
    };
    assert!(message.contains("parse error"), "{message}");
    let Err(SourceFault::Invalid { message }) = p
        .read(
            &"vector(1) or label_replace(vector(2), \"a\", \"b\", \"\", \"\")".to_owned(),
            Measure::Level,
            &at,
        )
        .await
    else {
        panic!("two series are not one number")
    };
    assert!(message.contains("2 series"), "{message}");
    let fault = crate::window::sample(&p, &at).await.unwrap_err();
    assert_eq!(fault.field, "analysis.source.prometheus.queries.requests");
    assert_eq!(
        fault.fault,
        SourceFault::MissingSeries,
        "nothing is scraped here"
    );
}

#[tokio::test]
async fn a_query_refused_at_a_window_names_its_field_with_the_server_s_message() {
    let Some(server) = RealPrometheus::start(None).await else {
        return;
    };
    // What `validate` would have refused, had the server been reachable then.
    let queries = "      queries:\n        requests: 'sum(vector(9))'\n        error_rate: 'sum(rate(x[{{interval}}]'\n";
    let (_, p) = prometheus(server.addr(), queries);
    let fault = crate::window::sample(&p, &window()).await.unwrap_err();
    assert_eq!(fault.field, "analysis.source.prometheus.queries.error_rate");
    let SourceFault::Query { message } = &fault.fault else {
        panic!("{fault}")
    };
    assert!(message.contains("parse error"), "{message}");
    assert!(fault.to_string().contains("parse error"), "{fault}");
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_timeout_naming_the_field() {
    // Accepts connections (the OS does, into the backlog) and never answers: not
    // a Prometheus, only a server too slow for `timeout: 2s`.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let (_, p) = prometheus(silent.local_addr().unwrap(), "");
    let fault = crate::window::sample(&p, &window()).await.unwrap_err();
    assert_eq!(fault.field, "analysis.source.prometheus.queries.requests");
    assert_eq!(fault.fault, SourceFault::Timeout { timeout_ms: 2000 });
    assert!(fault.to_string().contains("2000"), "{fault}");
}

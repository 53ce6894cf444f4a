use std::net::SocketAddr;

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use cutover_spec::MetricSource;

use super::*;
use crate::testing::{config, window};
use crate::window::sample;

/// A real HTTP server on 127.0.0.1: `/m/{version}/{metric}` answers JSON, and
/// `/fail` a 503, `/hang` never.
async fn endpoint() -> SocketAddr {
    let app = Router::new()
        .route(
            "/m/{version}/{metric}",
            get(
                |Path((version, metric)): Path<(String, String)>,
                 Query(q): Query<std::collections::BTreeMap<String, String>>,
                 headers: HeaderMap| async move {
                    let authorized = headers.get("authorization").and_then(|v| v.to_str().ok())
                        == Some("Bearer s3cret");
                    if !authorized {
                        return (StatusCode::UNAUTHORIZED, "who are you?".to_owned());
                    }
                    let value = match (version.as_str(), metric.as_str()) {
                        ("v2", "requests") => "120".to_owned(),
                        ("v2", "error_rate") => "0.025".to_owned(),
                        // Seven when `{{interval}}` came as the window's 5s.
                        ("v2", "queue") if q.get("w").map(String::as_str) == Some("5s") => {
                            "7".to_owned()
                        }
                        (_, "nan") => "\"NaN\"".to_owned(),
                        _ => return (StatusCode::OK, "{\"data\": {}}".to_owned()),
                    };
                    (
                        StatusCode::OK,
                        format!("{{\"data\": {{\"series\": [{{\"value\": {value}}}]}}}}"),
                    )
                },
            ),
        )
        .route(
            "/fail",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "overloaded, try later") }),
        )
        .route("/hang", get(std::future::pending::<&'static str>));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn web(addr: SocketAddr, extra: &str) -> Web {
    let metric = |m: &str| {
        format!(
            "{{ url: \"http://{addr}/m/{{{{version}}}}/{m}?w={{{{interval}}}}\", json_path: \"$.data.series[0].value\", \
             headers: {{ Authorization: \"Bearer ${{env:TOKEN}}\" }}, timeout: 2s }}"
        )
    };
    let yaml = format!(
        "    web:\n      requests: {}\n      error_rate: {}\n{extra}",
        metric("requests"),
        metric("error_rate")
    );
    let config = config(&yaml, &[("TOKEN", "s3cret")]);
    let MetricSource::Web(spec) = &config.analysis.source else {
        panic!("a web source")
    };
    Web::new(spec)
}

#[tokio::test]
async fn a_window_is_read_from_the_endpoint_with_its_headers_and_placeholders() {
    let addr = endpoint().await;
    let custom = format!(
        "      custom:\n        - {{ name: queue, url: \"http://{addr}/m/{{{{version}}}}/queue?w={{{{interval}}}}\", \
         json_path: \"$.data.series[0]['value']\", headers: {{ Authorization: \"Bearer ${{env:TOKEN}}\" }}, \
         direction: lower_is_better, limit: {{ max: 10 }} }}\n"
    );
    let reader = web(addr, &custom);
    let s = sample(&reader, &window()).await.unwrap();
    assert_eq!((s.requests, s.errors), (120, 3), "2.5% of 120");
    assert_eq!(s.custom.get("queue"), Some(&7.0), "{s:?}");
}

#[tokio::test]
async fn each_way_the_endpoint_fails_is_its_own_fault() {
    let addr = endpoint().await;
    let reader = web(addr, "");
    let query = |url: &str, path: &str, timeout_ms: u64| WebQuery {
        url: cutover_spec::Secret::plain(url.replace("ADDR", &addr.to_string())),
        headers: reader.spec.metrics.requests.headers.clone(),
        json_path: path.into(),
        timeout: std::time::Duration::from_millis(timeout_ms),
    };
    let at = window();
    let read = |q: WebQuery| {
        let reader = &reader;
        let at = &at;
        async move { reader.read(&q, Measure::Count, at).await }
    };
    assert_eq!(
        read(query("http://ADDR/fail", "$.x", 2000)).await,
        Err(SourceFault::Http {
            status: 503,
            message: "overloaded, try later".into()
        })
    );
    assert_eq!(
        read(query("http://ADDR/hang", "$.x", 200)).await,
        Err(SourceFault::Timeout { timeout_ms: 200 })
    );
    assert_eq!(
        read(query(
            "http://ADDR/m/v2/nan",
            "$.data.series[0].value",
            2000
        ))
        .await,
        Err(SourceFault::NaN)
    );
    let Err(SourceFault::Empty { detail }) = read(query(
        "http://ADDR/m/v9/requests",
        "$.data.series[0].value",
        2000,
    ))
    .await
    else {
        panic!("a path with nothing at it is empty")
    };
    assert!(detail.contains("`series`"), "{detail}");
    let Err(SourceFault::Unreachable { message }) =
        read(query("http://127.0.0.1:1/?token=hunter2", "$.x", 2000)).await
    else {
        panic!("nothing listens on port 1")
    };
    assert!(
        !message.contains("hunter2"),
        "the URL, which may hold a secret, is left out: {message}"
    );
}

#[tokio::test]
async fn without_its_token_the_endpoint_s_refusal_is_an_http_fault() {
    let addr = endpoint().await;
    let reader = web(addr, "");
    let mut q = reader.spec.metrics.requests.clone();
    q.headers.clear();
    assert_eq!(
        reader.read(&q, Measure::Count, &window()).await,
        Err(SourceFault::Http {
            status: 401,
            message: "who are you?".into()
        })
    );
}

//! Against `FakeDatadog`: a fake of Datadog's v1 metrics query API (it cannot be
//! reached from here), built from its documentation: `GET /api/v1/query` with
//! `from` and `to` in seconds and `query`, the keys in `DD-API-KEY` and
//! `DD-APPLICATION-KEY`, an answer of `series` each with a `pointlist` of
//! `[milliseconds, value]`, and `{"errors": [...]}` with a 4xx status.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use cutover_spec::MetricSource;
use serde_json::json;

use super::*;
use crate::testing::{config, window};
use crate::window::sample;

/// The fake Datadog, and the queries it was asked.
struct FakeDatadog {
    addr: SocketAddr,
    asked: Arc<Mutex<Vec<BTreeMap<String, String>>>>,
}

impl FakeDatadog {
    async fn start() -> FakeDatadog {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/api/v1/query", get(query))
            .with_state(asked.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeDatadog { addr, asked }
    }
}

type Asked = Arc<Mutex<Vec<BTreeMap<String, String>>>>;

async fn query(
    State(asked): State<Asked>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> (StatusCode, Json<serde_json::Value>) {
    let key = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if key("DD-API-KEY").as_deref() != Some("api-123")
        || key("DD-APPLICATION-KEY").as_deref() != Some("app-456")
    {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"errors": ["Forbidden"]})),
        );
    }
    asked.lock().unwrap().push(params.clone());
    let (Some(from), Some(to), Some(q)) =
        (params.get("from"), params.get("to"), params.get("query"))
    else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"errors": ["from, to and query are required"]})),
        );
    };
    let (from, to): (i64, i64) = (from.parse().unwrap_or(0), to.parse().unwrap_or(0));
    if q.matches('{').count() != q.matches('}').count() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"errors": ["Error parsing query: unbalanced braces"]})),
        );
    }
    let value = match q.as_str() {
        "sum:shop.requests{version:v2}.as_count()" => json!(150.0),
        "sum:shop.errors{version:v2}.as_count() / sum:shop.requests{version:v2}.as_count()" => {
            json!(0.02)
        }
        "avg:shop.latency.p95{version:v2}" => json!(0.180),
        _ => return (StatusCode::OK, Json(series(q, from, to, vec![]))),
    };
    // Two points in the window: an older one, and the last with a value; a null after them.
    let points = vec![
        json!([from * 1000, 999.0]),
        json!([(to - 1) * 1000, value]),
        json!([to * 1000, null]),
    ];
    (
        StatusCode::OK,
        Json(series(
            q,
            from,
            to,
            vec![json!({
                "metric": q, "display_name": q, "expression": q, "scope": "version:v2",
                "pointlist": points, "start": from * 1000, "end": to * 1000, "interval": 1, "length": 3, "aggr": "sum",
            })],
        )),
    )
}

fn series(q: &str, from: i64, to: i64, series: Vec<serde_json::Value>) -> serde_json::Value {
    json!({
        "status": "ok", "res_type": "time_series", "query": q, "message": "",
        "from_date": from * 1000, "to_date": to * 1000, "group_by": [], "series": series,
    })
}

fn datadog(addr: SocketAddr, app_key: &str, queries: &str) -> Datadog {
    let yaml = format!(
        "    datadog:\n      api_url: http://{addr}\n      api_key: ${{env:DD_API_KEY}}\n      app_key: {app_key}\n      \
         queries:\n{queries}"
    );
    let config = config(&yaml, &[("DD_API_KEY", "api-123")]);
    let MetricSource::Datadog(spec) = &config.analysis.source else {
        panic!("a Datadog source")
    };
    Datadog::new(spec)
}

const QUERIES: &str = "        requests: \"sum:shop.requests{version:{{version}}}.as_count()\"\n        \
    error_rate: \"sum:shop.errors{version:{{version}}}.as_count() / sum:shop.requests{version:{{version}}}.as_count()\"\n        \
    latency_p95: \"avg:shop.latency.p95{version:{{version}}}\"\n";

#[tokio::test]
async fn a_window_is_the_last_point_of_each_query_over_the_window() {
    let dd = FakeDatadog::start().await;
    let reader = datadog(dd.addr, "app-456", QUERIES);
    let at = window();
    let s = sample(&reader, &at).await.unwrap();
    assert_eq!((s.requests, s.errors), (150, 3));
    assert_eq!(s.p95, Some(std::time::Duration::from_millis(180)));
    let asked = dd.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 3);
    let (from, to): (i64, i64) = (
        asked[0]["from"].parse().unwrap(),
        asked[0]["to"].parse().unwrap(),
    );
    assert_eq!(to - from, 5, "the window's 5 s, in seconds since the epoch");
    assert_eq!(to, at.end_unix.floor() as i64);
}

#[tokio::test]
async fn refusals_and_missing_series_are_told_apart() {
    let dd = FakeDatadog::start().await;
    let at = window();
    let wrong_key = datadog(dd.addr, "nope", QUERIES);
    assert_eq!(
        wrong_key
            .read(&"sum:shop.requests{*}".to_owned(), Measure::Count, &at)
            .await,
        Err(SourceFault::Http {
            status: 403,
            message: r#"{"errors":["Forbidden"]}"#.into()
        })
    );
    let reader = datadog(dd.addr, "app-456", QUERIES);
    let Err(SourceFault::Http {
        status: 400,
        message,
    }) = reader
        .read(&"sum:shop.requests{*".to_owned(), Measure::Count, &at)
        .await
    else {
        panic!("a query Datadog cannot parse")
    };
    assert!(message.contains("Error parsing query"), "{message}");
    assert_eq!(
        reader
            .read(&"avg:nobody.has.this{*}".to_owned(), Measure::Count, &at)
            .await,
        Err(SourceFault::MissingSeries)
    );
}

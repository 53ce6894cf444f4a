//! Runs' events as server-sent events: one run's, and every run's, each resumed
//! with `Last-Event-ID` without a gap or a repeat.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::time::Instant;

use crate::support::{Env, Faults};

const DEADLINE: Duration = Duration::from_secs(60);

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
struct Sse {
    id: String,
    event: String,
    data: Value,
}

/// The complete events in `text` (a trailing partial one is left out); comments
/// (keep-alives) are skipped.
fn parse(text: &str) -> Vec<Sse> {
    let mut out = Vec::new();
    let complete = match text.rfind("\n\n") {
        Some(end) => &text[..end + 2],
        None => return out,
    };
    for block in complete.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let (mut id, mut event, mut data) = (String::new(), String::new(), Vec::new());
        for line in block.lines() {
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => id = value.to_owned(),
                "event" => event = value.to_owned(),
                "data" => data.push(value.to_owned()),
                _ => {}
            }
        }
        if data.is_empty() {
            continue;
        }
        assert_eq!(data.len(), 1, "an event's JSON is one data line: {block}");
        out.push(Sse {
            id,
            event,
            data: serde_json::from_str(&data[0]).unwrap(),
        });
    }
    out
}

fn sse(env: &Env, path: &str) -> reqwest::RequestBuilder {
    env.api(Method::GET, path)
        .header("accept", "text/event-stream")
}

/// A stream that ends by itself, read to its end.
async fn read_to_end(request: reqwest::RequestBuilder) -> Vec<Sse> {
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = tokio::time::timeout(DEADLINE, response.text())
        .await
        .expect("the event stream of a finished run did not end")
        .unwrap();
    parse(&text)
}

/// Reads an endless stream until `enough` says so.
async fn read_until(request: reqwest::RequestBuilder, enough: impl Fn(&[Sse]) -> bool) -> Vec<Sse> {
    let mut response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let deadline = Instant::now() + DEADLINE;
    let mut text = String::new();
    loop {
        let events = parse(&text);
        if enough(&events) {
            return events;
        }
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("the stream never had what was waited for: {events:#?}"))
            .unwrap()
            .expect("the stream of every run ended");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
}

fn seqs(events: &[Sse]) -> Vec<i64> {
    events
        .iter()
        .map(|e| e.data["seq"].as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_events_as_sse_resume_after_last_event_id_without_gaps_or_repeats() {
    let (env, load, waiting) = Env::canary_paused_at_half().await;
    let status = env.api_get("/api/v1/status").await;
    let run_id = status["active_run"]["run_id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/runs/{run_id}/events");

    // Live: what is recorded so far, then the rest once the run goes on.
    let live = {
        let request = sse(&env, &path).header("last-event-id", "2");
        tokio::spawn(read_to_end(request))
    };
    // Resumed after a seq the run never reached: its final event still ends it.
    let beyond = {
        // Answered (so subscribed to the live events) before the run goes on.
        let response = sse(&env, &path)
            .header("last-event-id", "1000000")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        tokio::spawn(async move {
            let text = tokio::time::timeout(DEADLINE, response.text())
                .await
                .expect("a stream resumed beyond every seq did not end with its run")
                .unwrap();
            parse(&text)
        })
    };
    env.cutover(&["promote"]).await.code(0);
    waiting.await.unwrap().code(0);
    load.stop().await;
    let live = live.await.unwrap();

    let all = read_to_end(sse(&env, &path)).await;
    let n = all.len() as i64;
    assert!(n > 3, "{all:#?}");
    assert_eq!(seqs(&all), (1..=n).collect::<Vec<_>>());
    for e in &all {
        assert_eq!(e.id, e.data["seq"].to_string());
        assert_eq!(e.event, e.data["kind"].as_str().unwrap());
        assert_eq!(e.data["run_id"], run_id.as_str());
    }
    assert_eq!(all.last().unwrap().data["outcome"], "promoted");
    assert_eq!(live, all[2..]);
    assert_eq!(beyond.await.unwrap(), all[n as usize - 1..]);

    // Resumed: exactly what came after; after the final event, nothing, and the end.
    let resumed = read_to_end(sse(&env, &path).header("last-event-id", "3")).await;
    assert_eq!(resumed, all[3..]);
    let resumed = read_to_end(sse(&env, &format!("{path}?last_event_id=3"))).await;
    assert_eq!(resumed, all[3..]);
    let after_end = read_to_end(sse(&env, &path).header("last-event-id", n.to_string())).await;
    assert_eq!(after_end, []);

    let bad = sse(&env, &path)
        .header("last-event-id", "three")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["code"], "bad_last_event_id");

    // JSON lines stay the default.
    assert_eq!(env.run_events(&run_id).await.len() as i64, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_of_every_run_tells_of_a_new_run_and_resumes_after_last_event_id() {
    let mut env = Env::new(Faults::none());
    env.serve().await;
    let stream = tokio::spawn(read_until(sse(&env, "/api/v1/events"), |events| {
        events.iter().any(|e| e.data["outcome"].is_string())
    }));
    env.deploy("v1").await.code(0);
    let seen = stream.await.unwrap();
    let run_id = seen[0].data["run_id"].as_str().unwrap().to_owned();
    assert_eq!(seen[0].data["seq"], 1, "{seen:#?}");
    for e in &seen {
        assert_eq!(e.id, format!("{}:{}", run_id, e.data["seq"]));
        assert_eq!(e.event, e.data["kind"].as_str().unwrap());
    }
    let recorded = read_to_end(sse(&env, &format!("/api/v1/runs/{run_id}/events"))).await;
    let upto_final = seen
        .iter()
        .position(|e| e.data["outcome"].is_string())
        .unwrap();
    assert_eq!(
        seen[..=upto_final]
            .iter()
            .map(|e| &e.data)
            .collect::<Vec<_>>(),
        recorded.iter().map(|e| &e.data).collect::<Vec<_>>()
    );

    // Resumed in the middle of v1's run, it goes on from there, and on to v2's.
    let from = format!("{run_id}:2");
    let resumed = tokio::spawn(read_until(
        sse(&env, "/api/v1/events").header("last-event-id", from),
        |events| {
            events
                .iter()
                .filter(|e| e.data["outcome"].is_string())
                .count()
                == 2
        },
    ));
    let load = env.load();
    env.deploy("v2").await.code(0);
    load.stop().await;
    let resumed = resumed.await.unwrap();
    assert_eq!(
        resumed
            .iter()
            .take_while(|e| e.data["run_id"] == run_id.as_str())
            .map(|e| &e.data)
            .collect::<Vec<_>>(),
        recorded[2..].iter().map(|e| &e.data).collect::<Vec<_>>()
    );
    let second: Vec<&Sse> = resumed
        .iter()
        .filter(|e| e.data["run_id"] != run_id.as_str())
        .collect();
    let n = second.len() as i64;
    assert_eq!(
        second
            .iter()
            .map(|e| e.data["seq"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        (1..=n).collect::<Vec<_>>()
    );

    let bad = sse(&env, "/api/v1/events")
        .header("last-event-id", "no-such-run:1")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::NOT_FOUND);
    for (query, code) in [
        ("?since=1", "bad_query"),
        ("?last_event_id=7", "bad_last_event_id"),
    ] {
        let bad = sse(&env, &format!("/api/v1/events{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: Value = bad.json().await.unwrap();
        assert_eq!(body["code"], code, "{query}");
    }
}

//! `cutover judge`: two sample files in, a verdict and its exit code out.

use crate::support::{Env, Faults};

/// Writes `text` to `name` in the config's folder; its path.
fn beside_config(env: &Env, name: &str, text: &str) -> String {
    let path = env.config.with_file_name(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// `n` values: 1, 2, ... n, each times `scale`.
fn samples(n: usize, scale: f64) -> String {
    (1..=n).map(|i| format!("{}\n", i as f64 * scale)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judge_passes_the_same_fails_the_worse_and_refuses_bad_input() {
    let env = Env::new(Faults::none());
    let write = |name: &str, text: &str| beside_config(&env, name, text);
    let base = write("base.txt", &samples(200, 1.0));
    let same = write("same.txt", &samples(200, 1.0));
    // JSON lines, 30% slower.
    let slow: String = (1..=200)
        .map(|i| format!("{{\"latency_ms\": {}}}\n", i as f64 * 1.3))
        .collect();
    let slow = write("slow.jsonl", &slow);

    let out = env
        .cutover(&["judge", "--baseline", &base, "--canary", &same])
        .await;
    out.code(0);
    assert!(out.stdout.contains("value: pass"), "{}", out.stdout);

    let out = env
        .cutover(&[
            "judge",
            "--baseline",
            &base,
            "--canary",
            &slow,
            "--metric",
            "latency_ms",
            "--json",
        ])
        .await;
    // `base.txt` has plain numbers: the metric name is only for JSON objects.
    out.code(3);
    let json: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(json["comparison"]["verdict"], "high", "{json}");
    assert!(json["comparison"]["test"]["p_value"].as_f64().unwrap() < 0.05);

    // Within a 50% tolerance, the slower canary passes.
    let out = env
        .cutover(&[
            "judge",
            "--baseline",
            &base,
            "--canary",
            &slow,
            "--metric",
            "latency_ms",
            "--tolerance",
            "50%",
        ])
        .await;
    out.code(0);

    let bad = write("bad.txt", "1\n2\nthree\n");
    let out = env
        .cutover(&["judge", "--baseline", &base, "--canary", &bad])
        .await;
    out.code(2);
    assert!(out.stderr.contains("bad.txt:3:"), "{}", out.stderr);
    let few = write("few.txt", "1\n2\n");
    let out = env
        .cutover(&["judge", "--baseline", &base, "--canary", &few])
        .await;
    out.code(2);
    assert!(out.stdout.contains("no data"), "{}", out.stdout);
}

/// 400 values 1..=400 in a shuffled (but fixed) order, each times `scale`.
fn shuffled(scale: f64) -> String {
    (0..400u32)
        .map(|i| format!("{}\n", f64::from((i * 37) % 400 + 1) * scale))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judge_sequential_feeds_the_values_in_order_and_says_where_it_rejected() {
    let env = Env::new(Faults::none());
    let write = |name: &str, text: &str| beside_config(&env, name, text);
    let base = write("base.txt", &shuffled(1.0));
    let same = write("same.txt", &shuffled(1.0));
    let slow = write("slow.txt", &shuffled(1.5));
    let judge = |canary: String| {
        let (env, base) = (&env, base.clone());
        async move {
            env.cutover(&[
                "judge",
                "--test",
                "sequential",
                "--baseline",
                &base,
                "--canary",
                &canary,
                "--window",
                "40",
                "--json",
            ])
            .await
        }
    };
    let out = judge(same).await;
    out.code(0);
    let json: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(
        json["rejected_at_window"],
        serde_json::Value::Null,
        "{json}"
    );
    assert_eq!(json["windows"], 10);
    let out = judge(slow).await;
    out.code(3);
    let json: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert!(json["rejected_at_window"].as_u64().is_some(), "{json}");
    assert!(
        json["evidence"]["p_value"].as_f64().unwrap() <= 0.01,
        "{json}"
    );
    let out = env
        .cutover(&[
            "judge",
            "--test",
            "sequential",
            "--baseline",
            &base,
            "--canary",
            &base,
            "--quantile",
            "1.5",
        ])
        .await;
    out.code(2);
    assert!(out.stderr.contains("--quantile"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judge_run_judges_a_recorded_run_again_with_the_settings_of_now() {
    let mut env = Env::new(Faults::none());
    env.serve().await;
    env.deploy("v1").await.code(0);
    let load = env.load();
    env.deploy("v2").await.code(0);
    load.stop().await;
    let run = env.last_run_json().await;
    let id = run["run"]["id"].as_str().unwrap().to_owned();
    let file = env.config.display().to_string();

    // The settings it ran with: it passes again.
    let out = env.cutover(&["judge", "--run", &id, "-f", &file]).await;
    out.code(0);
    assert!(out.stdout.contains("no rollback"), "{}", out.stdout);

    // Stricter settings than any real service meets: it would have rolled back.
    let text = std::fs::read_to_string(&env.config).unwrap();
    let strict_text = text.replace(
        "    error_rate: { max: 5% }",
        "    error_rate: { max: 5% }\n    apdex: { threshold: 1us, min: 0.99 }",
    );
    assert_ne!(strict_text, text, "the metrics section is where it was");
    let strict = env.config.with_file_name("strict.yaml");
    std::fs::write(&strict, strict_text).unwrap();
    let strict = strict.display().to_string();
    let out = env
        .cutover(&["judge", "--run", &id, "-f", &strict, "--json"])
        .await;
    out.code(3);
    let json: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(json["roll_back"]["window"], 1, "{json}");
    assert!(
        json["roll_back"]["reason"]
            .as_str()
            .unwrap()
            .contains("apdex"),
        "{json}"
    );
    let windows = json["windows"].as_array().unwrap();
    assert!(windows.len() >= 2, "{json}");
    assert_eq!(windows[0]["recorded"], "pass");
    assert_eq!(windows[0]["report"]["verdict"], "fail");

    let out = env
        .cutover(&["judge", "--run", "no-such-run", "-f", &file])
        .await;
    out.code(2);
    assert!(out.stderr.contains("cutover history"), "{}", out.stderr);
}

//! The dashboard: how the daemon serves it, and a real headless Chromium driven over
//! WebDriver (Debian's `chromium` and `chromium-driver`) watching a paused canary
//! progress live and promoting it with its button.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::support::{Env, Faults};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const DEADLINE: Duration = Duration::from_secs(60);

/// One file of the page as the daemon served it.
struct Served {
    path: String,
    content_type: String,
    has_policy: bool,
    body: String,
}

/// Every file the page loads: the ones `index.html` names and the modules the
/// scripts import, each as the daemon serves it (without a token).
async fn page_files(env: &Env, index: &str) -> Vec<Served> {
    let mut paths: Vec<String> = quoted_after(index, "src=\"")
        .chain(quoted_after(index, "href=\"").filter(|p| p.starts_with("/dashboard/")))
        .collect();
    let mut out: Vec<Served> = Vec::new();
    while let Some(path) = paths.get(out.len()).cloned() {
        let response = env.api(Method::GET, &path).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let content_type = header("content-type").unwrap_or_default();
        let has_policy = header("content-security-policy").is_some();
        let body = response.text().await.unwrap();
        for module in quoted_after(&body, "from \"./") {
            let module = format!("/dashboard/{module}");
            if !paths.contains(&module) {
                paths.push(module);
            }
        }
        out.push(Served {
            path,
            content_type,
            has_policy,
            body,
        });
    }
    out
}

/// Each string that follows `prefix` up to the next `"`.
fn quoted_after<'t>(text: &'t str, prefix: &'t str) -> impl Iterator<Item = String> + 't {
    text.split(prefix)
        .skip(1)
        .filter_map(|rest| rest.split('"').next().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_served_whole_with_a_strict_content_security_policy() {
    // Reads need the token here, as they may: the page itself must not.
    let mut env = Env::new(Faults::none()).with_sections("api: { read_auth: true }\n");
    env.serve().await;
    let status = env.api(Method::GET, "/api/v1/status").send().await.unwrap();
    assert_eq!(status.status(), 401, "reads should need the token here");

    let page = env.api(Method::GET, "/").send().await.unwrap();
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("default-src 'none'"), "{policy}");
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert!(policy.contains("connect-src 'self'"), "{policy}");
    // Chart receipts are shown from blob: URLs, through <img> only.
    assert!(policy.contains("img-src 'self' blob:;"), "{policy}");
    assert!(!policy.contains("unsafe"), "{policy}");
    assert!(
        !policy.contains("http"),
        "an origin beyond this one: {policy}"
    );
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let index = page.text().await.unwrap();
    // No inline script and no inline handlers: the policy would block them.
    for tag in index.split("<script").skip(1) {
        assert!(
            tag.trim_start().starts_with("type=\"module\" src=\"/"),
            "<script{tag}"
        );
    }
    assert!(!index.contains(" onclick="), "an inline handler");
    assert!(!index.contains("style=\""), "an inline style");

    let files = page_files(&env, &index).await;
    let served: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    for expected in [
        "/dashboard/app.js",
        "/dashboard/markdown.js",
        "/dashboard/style.css",
    ] {
        assert!(
            served.contains(&expected),
            "{expected} not loaded: {served:?}"
        );
    }
    for file in &files {
        let expected = match Path::new(&file.path).extension().and_then(|e| e.to_str()) {
            Some("js") => "text/javascript",
            Some("css") => "text/css",
            Some("svg") => "image/svg+xml",
            other => panic!("{}: an unexpected kind of file {other:?}", file.path),
        };
        assert!(
            file.content_type.starts_with(expected),
            "{} served as {}",
            file.path,
            file.content_type
        );
        assert!(file.has_policy, "{} has no policy", file.path);
        assert!(
            !file.body.contains("innerHTML"),
            "{} parses text as HTML",
            file.path
        );
        assert!(
            !file.body.contains("https://"),
            "{} names another origin",
            file.path
        );
    }
}

/// Nowhere on the page is SVG source shown as text.
async fn assert_no_svg_source(browser: &Browser) {
    let page = browser.text("body").await;
    assert!(!page.contains("<svg"), "SVG source shown as text: {page}");
}

/// chromedriver on a port the OS picks, and a session of headless Chromium with a
/// fresh profile. Both run in a process group of their own, which is killed when
/// this is dropped: a failing test leaves no browser behind.
struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(group) = self.driver.id() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(group as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

impl Browser {
    /// `None` (said loudly) when this machine has no Chromium or chromedriver.
    async fn start() -> Option<Browser> {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            if !Path::new(binary).exists() {
                eprintln!(
                    "SKIPPED: the dashboard's browser test needs {binary} \
                     (Debian: apt-get install chromium chromium-driver; .ci/run installs them)"
                );
                return None;
            }
        }
        let mut driver = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let port = driver_port(&mut driver).await;
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1700",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args }
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal")
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("chromedriver started no Chromium session");
        Some(Browser {
            client,
            driver,
            _profile: profile,
        })
    }

    /// The text of the first element matching `css`, or "" if there is none yet.
    /// Read in the page in one step: the page redraws parts of itself every second.
    async fn text(&self, css: &str) -> String {
        let script = "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';";
        let text = self.client.execute(script, vec![json!(css)]).await.unwrap();
        text.as_str().unwrap_or_default().to_owned()
    }

    /// How many elements match `css` now.
    async fn count(&self, css: &str) -> usize {
        let script = "return document.querySelectorAll(arguments[0]).length;";
        let n = self.client.execute(script, vec![json!(css)]).await.unwrap();
        n.as_u64().unwrap_or_default() as usize
    }

    /// Waits until `ok` holds for the text of `css`.
    async fn wait_for_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let text = self.text(css).await;
            if ok(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "the page never showed {what}; `{css}` says {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the first `<img>` matching `css` has loaded a picture; returns its
    /// `src`.
    async fn wait_for_image(&self, css: &str, what: &str) -> String {
        let script = "const e = document.querySelector(arguments[0]); \
                      return e && e.complete && e.naturalWidth > 0 ? e.src : '';";
        let deadline = Instant::now() + DEADLINE;
        loop {
            let src = self.client.execute(script, vec![json!(css)]).await.unwrap();
            if let Some(src) = src.as_str().filter(|s| !s.is_empty()) {
                return src.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "the page never showed {what} as a loaded `{css}`"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until more than `than` elements match `css`; returns how many.
    async fn wait_for_more(&self, css: &str, than: usize, what: &str) -> usize {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let n = self.count(css).await;
            if n > than {
                return n;
            }
            assert!(Instant::now() < deadline, "{what}: still {n} `{css}`");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn click(&self, css: &str) {
        let element = self
            .client
            .wait()
            .at_most(DEADLINE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` to click: {e}"));
        element
            .click()
            .await
            .unwrap_or_else(|e| panic!("could not click `{css}`: {e}"));
    }

    async fn type_into(&self, css: &str, text: &str) {
        let input = self.client.find(Locator::Css(css)).await.unwrap();
        input.clear().await.unwrap();
        input.send_keys(text).await.unwrap();
    }

    /// Waits until the element matching `css` is shown (a dialog opened).
    async fn wait_until_displayed(&self, css: &str) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && element.is_displayed().await.unwrap_or(false)
            {
                return;
            }
            assert!(Instant::now() < deadline, "`{css}` never showed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The port chromedriver says it listens on (`... started successfully on port N.`).
async fn driver_port(driver: &mut Child) -> u16 {
    let stdout = driver.stdout.take().expect("piped");
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("chromedriver never said its port")
            .unwrap()
            .expect("chromedriver exited before it said its port");
        if let Some(rest) = line.split("on port ").nth(1)
            && line.contains("started successfully")
        {
            return rest.trim_end_matches('.').trim().parse().unwrap();
        }
    }
}

/// Where to save the screenshot for the README, when `CUTOVER_SCREENSHOT` names a
/// file (relative to the repository's root): CI leaves the tree alone.
fn screenshot_path() -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os("CUTOVER_SCREENSHOT")?);
    Some(if path.is_absolute() {
        path
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(path)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_canary_live_and_its_promote_button_finishes_it() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    // Three steps, the second waiting for a person (the first at 25%: enough
    // requests per window to be judged on a busy machine). The config, shown as a
    // receipt, carries markup that must stay text.
    let mut env = Env::new(Faults::none())
        .with_steps(
            "[{weight: 25%, pause: 1s}, {weight: 50%, pause: until-promoted}, {weight: 100%, pause: 1s}]",
        )
        .with_sections("# <b id=\"injected\">markup</b> stays text\n");
    env.serve().await;
    env.deploy("v1").await.code(0);
    let load = env.load();
    // The page is open before the canary starts: it picks the new run up by itself.
    browser.client.goto(&env.api_url("/")).await.unwrap();
    browser
        .wait_for_text("#run-title", "the first deploy", |t| t == "v1")
        .await;
    let deploying = env.deploy_in_background("v2");
    env.wait_for_weight("50%").await;

    // The run, live: its heading, the step it waits in, the weight.
    browser
        .wait_for_text("#run-title", "the run from v1 to v2", |t| t == "v1 → v2")
        .await;
    browser
        .wait_for_text(
            ".stage.current .stage-name",
            "step 2 as the current stage",
            |t| t == "Step 2",
        )
        .await;
    let passed = browser.text(".stage.done:nth-child(2)").await;
    assert!(
        passed.starts_with("Step 1\n25%"),
        "step 1 is not shown done: {passed:?}"
    );
    assert_eq!(browser.text(".stage.upcoming .stage-name").await, "Step 3");
    browser
        .wait_for_text("#split-canary", "v2 at 50%", |t| t.contains("50%"))
        .await;
    // Progressing live: the timeline and each chart gain points as windows are judged.
    let events = browser.count("#events .event").await;
    browser
        .wait_for_more("#events .event", events, "no new events arrived")
        .await;
    for chart in ["#chart-rate", "#chart-errors", "#chart-p95"] {
        let dots = format!("{chart} circle.dot.canary");
        let now = browser.count(&dots).await;
        browser
            .wait_for_more(&dots, now, &format!("{chart} gained no point"))
            .await;
    }
    let windows = browser.count("#windows .window").await;
    assert!(windows > 0, "no analysis window listed");
    if let Some(path) = screenshot_path() {
        // A picture worth showing: a few seconds of windows on the charts.
        browser
            .wait_for_more("#chart-rate circle.dot.canary", 15, "fewer than 16 windows")
            .await;
        let png = browser.client.screenshot().await.unwrap();
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!("saved the dashboard to {}", path.display());
    }

    // A wrong token first: the promote is refused and the page asks again.
    browser.click("#token-button").await;
    browser.type_into("#token-input", "not-the-token").await;
    browser.click("#token-save").await;
    browser.click("#promote").await;
    browser.wait_until_displayed("#confirm-dialog").await;
    browser.click("#confirm-ok").await;
    browser.wait_until_displayed("#token-error").await;
    assert_eq!(
        env.api_get("/api/v1/status").await["active_run"]["version"],
        "v2",
        "a refused promote changed something"
    );
    browser.type_into("#token-input", &env.token()).await;
    browser.click("#token-save").await;

    // The promote, retried with the right token, finishes the run.
    browser
        .wait_for_text(".stage:last-child .stage-name", "the run promoted", |t| {
            t == "Promoted"
        })
        .await;
    deploying.await.unwrap().code(0);
    let runs = env.api_get("/api/v1/runs?limit=1").await;
    assert_eq!(runs[0]["outcome"], "promoted", "{runs}");
    let status = env.api_get("/api/v1/status").await;
    assert_eq!(status["stable"], "v2", "{status}");
    browser
        .wait_for_text(
            "#history-rows tr:first-child",
            "the run in the history",
            |t| t.contains("promoted"),
        )
        .await;
    // The app: v2 live now, v1 before it.
    browser
        .wait_for_text(".live-version", "v2 live", |t| t.starts_with("v2"))
        .await;
    assert_eq!(browser.text(".previous").await, "before: v1");
    // Its receipts, rendered: the deployment log's title as a heading.
    browser
        .wait_for_text("#receipt-body h1", "the deployment log", |t| {
            t.contains("e2e v2")
        })
        .await;
    assert!(
        browser.count("#receipt-body table td").await > 0,
        "no table rendered"
    );
    browser
        .click("#receipt-tabs button[data-name=\"config.yaml\"]")
        .await;
    browser
        .wait_for_text("#receipt-body pre", "the config as text", |t| {
            t.contains("# <b id=\"injected\">markup</b> stays text")
        })
        .await;
    assert_eq!(
        browser.count("#injected").await,
        0,
        "receipt text became markup"
    );
    // The chart receipt: a picture from a blob: URL (fetched with the token), never
    // its SVG source as text; the analysis receipt shows the same picture.
    browser
        .click("#receipt-tabs button[data-name=\"canary-analysis.svg\"]")
        .await;
    let src = browser
        .wait_for_image("#receipt-body img", "the chart receipt")
        .await;
    assert!(src.starts_with("blob:"), "the chart's src: {src}");
    assert_no_svg_source(&browser).await;
    browser
        .click("#receipt-tabs button[data-name=\"canary-analysis.md\"]")
        .await;
    let src = browser
        .wait_for_image("#receipt-body img", "the chart in the analysis receipt")
        .await;
    assert!(src.starts_with("blob:"), "the embedded chart's src: {src}");
    let analysis = browser.text("#receipt-body").await;
    assert!(
        !analysis.contains("](canary-analysis.svg)"),
        "the image's Markdown shown as text: {analysis}"
    );
    assert_no_svg_source(&browser).await;
    load.stop().await;
    browser.client.clone().close().await.unwrap();
}

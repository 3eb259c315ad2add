//! The console in a real browser: headless Chromium (Debian's, installed by the suite
//! when missing) against `sluice dev` after the README's loop. Every page loads with
//! status 200 and no console error; the dataset page draws as many bars per column as
//! the profile has bins; the timeline shows every release; approve and rollback through
//! the page change production and the audit trail; a request without a session is sent
//! to sign-in; a forged POST without the CSRF token is refused. Each page's screenshot
//! is written to `<target>/tmp/console-screenshots/` for people to look at.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chromiumoxide::cdp::browser_protocol::log::{EnableParams, EventEntryAdded, LogEntryLevel};
use chromiumoxide::cdp::js_protocol::runtime::{
    ConsoleApiCalledType, EventConsoleApiCalled, EventExceptionThrown,
};
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::{Browser, BrowserConfig, Page};
use futures::StreamExt;
use serde_json::{Value, json};
use sluice_tests::{ChildGuard, adult, repo_root, sluice_bin};

const ADMIN: &str = "browser-admin-key";
const SCORING: &str = "browser-scoring-key";

/// `sluice dev` running the README's loop on a fresh store, serving on a free port.
struct Dev {
    base: String,
    root: tempfile::TempDir,
    _child: ChildGuard,
}

impl Dev {
    fn start() -> Dev {
        let root = tempfile::tempdir().unwrap();
        let data = |d: &str, f: &str| format!("{d}={}", adult(f).display());
        let mut child = Command::new(sluice_bin())
            .current_dir(repo_root())
            .arg("--root")
            .arg(root.path())
            .args(["dev", "--port", "0"])
            .args(["--push", &data("adult", "adult.data")])
            .args(["--push", &data("adult", "adult.test")])
            .args(["--push", &data("adult-eval", "adult.test")])
            .env("SLUICE_ADMIN_KEYS", ADMIN)
            .env("SLUICE_SCORING_KEYS", SCORING)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let base = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| {
                l.strip_prefix("console on ")
                    .and_then(|rest| rest.split("/api/console/").next())
                    .map(str::to_owned)
            })
            .expect("sluice dev prints the console's address");
        // Keep reading what it prints, as a terminal would.
        std::thread::spawn(move || lines.for_each(drop));
        Dev {
            base,
            root,
            _child: ChildGuard(child),
        }
    }

    async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = reqwest::Client::new()
            .request(method, format!("{}{path}", self.base))
            .header("x-functions-key", ADMIN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.unwrap();
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
        answer.json().await.unwrap()
    }

    /// Waits (at most 10 minutes) until `ready` holds of the model list.
    async fn until(&self, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let models = self.api(reqwest::Method::GET, "/api/models", None).await;
            if ready(&models) {
                return models;
            }
            assert!(Instant::now() < deadline, "{what}: {models}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

fn production(models: &Value) -> Option<u64> {
    models["models"][0]["production"]["version"].as_u64()
}

/// What a page's console and its loads reported as errors.
type Errors = Arc<Mutex<Vec<String>>>;

async fn watch_errors(page: &Page) -> Errors {
    let errors: Errors = Arc::default();
    page.execute(EnableParams::default()).await.unwrap();
    let mut console = page
        .event_listener::<EventConsoleApiCalled>()
        .await
        .unwrap();
    let mut thrown = page.event_listener::<EventExceptionThrown>().await.unwrap();
    let mut logged = page.event_listener::<EventEntryAdded>().await.unwrap();
    let sink = errors.clone();
    tokio::spawn(async move {
        loop {
            let error = tokio::select! {
                Some(e) = console.next() => matches!(e.r#type, ConsoleApiCalledType::Error | ConsoleApiCalledType::Assert)
                    .then(|| format!("console: {:?}", e.args.iter().map(|a| a.value.clone()).collect::<Vec<_>>())),
                Some(e) = thrown.next() => Some(format!("exception: {}", e.exception_details.text)),
                Some(e) = logged.next() => (e.entry.level == LogEntryLevel::Error)
                    .then(|| format!("log: {} {:?}", e.entry.text, e.entry.url)),
                else => break,
            };
            if let Some(error) = error {
                sink.lock().unwrap().push(error);
            }
        }
    });
    errors
}

/// Opens `path` and answers the final response's status and path (after redirects).
async fn visit(page: &Page, base: &str, path: &str) -> (u64, String) {
    page.goto(format!("{base}{path}")).await.unwrap();
    let found: (u64, String) = page
        .evaluate(
            "[performance.getEntriesByType('navigation')[0].responseStatus, location.pathname + location.search]",
        )
        .await
        .unwrap()
        .into_value()
        .unwrap();
    found
}

async fn screenshot(page: &Page, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    page.save_screenshot(
        ScreenshotParams::builder().full_page(true).build(),
        dir.join(format!("{name}.png")),
    )
    .await
    .unwrap();
}

async fn eval<T: serde::de::DeserializeOwned>(page: &Page, js: &str) -> T {
    page.evaluate(js).await.unwrap().into_value().unwrap()
}

/// Waits (at most 30 s) for the page to be replaced by the one a click navigated to:
/// the old document carries a mark the new one does not.
async fn navigated(page: &Page) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Between documents there is no context to evaluate in: not there yet.
        let done = page
            .evaluate("typeof window.__left === 'undefined' && document.readyState === 'complete'")
            .await
            .ok()
            .and_then(|r| r.into_value::<bool>().ok());
        if done == Some(true) {
            return;
        }
        assert!(Instant::now() < deadline, "no navigation after the click");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clicks `button` and waits for the page it leads to.
async fn click_through(page: &Page, button: &str) {
    let _: bool = eval(page, "window.__left = true").await;
    page.find_element(button)
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    navigated(page).await;
}

/// Fills a change form's reason and submits it, as a person would.
async fn submit_change(page: &Page, form: &str, reason: &str) {
    page.find_element(format!("{form} input[name=reason]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap()
        .type_str(reason)
        .await
        .unwrap();
    click_through(page, &format!("{form} button")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_chromium_after_the_readme_loop() {
    let chromium = sluice_tests::chromium();
    let dev = Dev::start();
    let models = dev
        .until("adult-income in production", |m| production(m).is_some())
        .await;
    assert_eq!(production(&models), Some(1));
    // A second version waits in staging for a person's approval.
    let mut config: Value = serde_json::from_slice(
        &std::fs::read(repo_root().join("configs/adult-income.json")).unwrap(),
    )
    .unwrap();
    config["promotion"]["approval"] = json!("manual");
    config["promotion"]["min_improvement"] = json!(-0.05);
    config["promotion"]["max_regression"] = json!(0.05);
    dev.api(
        reqwest::Method::PUT,
        "/api/models/adult-income/config",
        Some(config),
    )
    .await;
    dev.api(
        reqwest::Method::POST,
        "/api/retrain",
        Some(json!({"model": "adult-income", "reason": "browser test", "config_overrides": {"seed": 7}})),
    )
    .await;
    dev.until("v2 in staging", |m| {
        m["models"][0]["staging"]["version"].as_u64() == Some(2)
    })
    .await;

    let profile = tempfile::tempdir().unwrap();
    let config = BrowserConfig::builder()
        .chrome_executable(chromium)
        .new_headless_mode()
        .no_sandbox()
        .user_data_dir(profile.path())
        .window_size(1280, 900)
        .arg("--disable-gpu")
        .arg("--disable-dev-shm-usage")
        .build()
        .unwrap();
    let (mut browser, mut handler) = Browser::launch(config).await.unwrap();
    let events = tokio::spawn(async move { while handler.next().await.is_some() {} });
    let page = browser.new_page("about:blank").await.unwrap();
    let errors = watch_errors(&page).await;
    let base = dev.base.as_str();

    // Without a session, every page is the sign-in page.
    let (status, at) = visit(&page, base, "/api/console/models/adult-income").await;
    assert_eq!((status, at.as_str()), (200, "/api/console/sign-in"));
    screenshot(&page, "sign-in").await;
    page.find_element("#key")
        .await
        .unwrap()
        .click()
        .await
        .unwrap()
        .type_str(ADMIN)
        .await
        .unwrap();
    click_through(&page, "main form button").await;
    assert_eq!(
        eval::<String>(&page, "location.pathname").await,
        "/api/console/"
    );

    // Every page, with status 200.
    let run = dev.api(reqwest::Method::GET, "/api/runs", None).await["runs"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let report = std::fs::read_dir(dev.root.path().join("quarantine/adult"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find_map(|f| f.strip_suffix(".report.json").map(str::to_owned))
        .expect("adult.test is quarantined in the README's loop");
    let pages = [
        ("overview", "/api/console/".to_owned()),
        ("datasets", "/api/console/datasets".to_owned()),
        ("dataset", "/api/console/datasets/adult".to_owned()),
        (
            "dataset-version",
            "/api/console/datasets/adult/versions/1".to_owned(),
        ),
        (
            "quarantine",
            format!("/api/console/datasets/adult/quarantine/{report}"),
        ),
        ("model", "/api/console/models/adult-income".to_owned()),
        (
            "model-sorted",
            "/api/console/models/adult-income?sort=accuracy".to_owned(),
        ),
        (
            "compare",
            "/api/console/models/adult-income/compare?a=1&b=2".to_owned(),
        ),
        (
            "lineage",
            "/api/console/models/adult-income/versions/1".to_owned(),
        ),
        (
            "monitoring",
            "/api/console/models/adult-income/monitoring".to_owned(),
        ),
        ("runs", "/api/console/runs".to_owned()),
        ("run", format!("/api/console/runs/{run}")),
        ("audit", "/api/console/audit".to_owned()),
        ("audit-verified", "/api/console/audit?verify=all".to_owned()),
    ];
    for (name, path) in &pages {
        let (status, at) = visit(&page, base, path).await;
        assert_eq!((status, &at), (200, path), "{name}");
        screenshot(&page, name).await;
    }

    // The dataset page draws as many bars per column as the profile has bins.
    visit(&page, base, "/api/console/datasets/adult/versions/1").await;
    let drawn: Vec<(String, usize)> = eval(
        &page,
        "[...document.querySelectorAll('figure.column')].map(f => [f.dataset.column, f.querySelectorAll('rect[fill=\"#0B6BCB\"]').length])",
    )
    .await;
    let manifest: sluice_shared::dataset::Manifest = serde_json::from_slice(
        &std::fs::read(dev.root.path().join("datasets/adult/v1/manifest.json")).unwrap(),
    )
    .unwrap();
    let expected: Vec<(String, usize)> = manifest
        .profile
        .iter()
        .map(|c| {
            let bars = c
                .numeric
                .as_ref()
                .map_or(c.top_values.len(), |n| n.histogram.len());
            (c.name.clone(), bars)
        })
        .collect();
    assert_eq!(drawn, expected);

    // The timeline shows every release.
    visit(&page, base, "/api/console/models/adult-income").await;
    let history = dev
        .api(reqwest::Method::GET, "/api/models/adult-income", None)
        .await;
    let ids: Vec<String> = eval(
        &page,
        "[...document.querySelectorAll('ol.timeline li')].map(li => li.id)",
    )
    .await;
    let mut released: Vec<String> = history["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    released.reverse();
    assert_eq!(ids, released, "newest first, every one");

    assert_eq!(
        *errors.lock().unwrap(),
        Vec::<String>::new(),
        "console errors"
    );

    // A forged POST (no CSRF token, though the browser sends the cookie) is refused;
    // the browser logs that refusal, as it should, and nothing else.
    let forged: u16 = eval(
        &page,
        "fetch('/api/console/models/adult-income/rollback', {method: 'POST', headers: {'content-type': 'application/x-www-form-urlencoded'}, body: 'reason=forged'}).then(r => r.status)",
    )
    .await;
    assert_eq!(forged, 403);
    // The browser's log of it arrives as an event of its own, soon after.
    let deadline = Instant::now() + Duration::from_secs(10);
    while errors.lock().unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logged = std::mem::take(&mut *errors.lock().unwrap());
    assert!(
        logged.len() == 1 && logged[0].contains("403 (Forbidden)"),
        "{logged:?}"
    );
    assert_eq!(
        production(&dev.api(reqwest::Method::GET, "/api/models", None).await),
        Some(1)
    );

    // Approve and rollback through the page change production and the audit trail.
    submit_change(
        &page,
        "form.change[action$='/versions/2/approve']",
        "approved in the browser",
    )
    .await;
    assert_eq!(
        eval::<String>(&page, "location.pathname").await,
        "/api/console/models/adult-income"
    );
    assert_eq!(
        production(&dev.api(reqwest::Method::GET, "/api/models", None).await),
        Some(2)
    );
    screenshot(&page, "approved").await;
    submit_change(
        &page,
        "form.change[action$='/rollback']",
        "rolled back in the browser",
    )
    .await;
    assert_eq!(
        production(&dev.api(reqwest::Method::GET, "/api/models", None).await),
        Some(1)
    );
    visit(&page, base, "/api/console/audit").await;
    let audited: Vec<String> = eval(
        &page,
        "[...document.querySelectorAll('tbody tr')].map(tr => tr.innerText)",
    )
    .await;
    for (action, reason) in [
        ("approved", "approved in the browser"),
        ("rolled_back", "rolled back in the browser"),
    ] {
        assert!(
            audited
                .iter()
                .any(|r| r.contains(action) && r.contains(reason)),
            "{action}: {reason} in {audited:?}"
        );
    }
    screenshot(&page, "audit-after").await;

    assert_eq!(
        *errors.lock().unwrap(),
        Vec::<String>::new(),
        "console errors"
    );
    browser.close().await.unwrap();
    let _ = browser.wait().await;
    events.abort();
}

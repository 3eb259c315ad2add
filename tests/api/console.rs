//! The web console over HTTP, as a browser drives it: nothing without a session; a key
//! exchanged for a signed, HttpOnly, SameSite=Strict cookie; the overview rendered from
//! the same answers the API gives; a change from a page only with its CSRF token.

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::helpers::{ADMIN_KEY, TestApp, adult_in_production_with};

const VIEWER_KEY: &str = "a-viewer-key-for-the-console";

/// A form of one field, as a browser sends it.
fn encoded(name: &str, value: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair(name, value)
        .finish()
}

/// A client that does not follow redirects (so each answer can be looked at).
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// Signs in with `key`; returns the session cookie (`name=value`) and its attributes.
async fn sign_in(app: &TestApp, key: &str) -> (String, String) {
    let answer = browser()
        .post(format!("{}/api/console/sign-in", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encoded("key", key))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303, "signed in, sent on");
    assert_eq!(answer.headers()[LOCATION], "/api/console/");
    let set = answer.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    let cookie = set.split(';').next().unwrap().to_owned();
    (cookie, set)
}

async fn page(app: &TestApp, path: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut request = browser().get(format!("{}{path}", app.base));
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn the_console_needs_a_session_and_shows_production_and_the_latest_events() {
    // The loop app's keys, and a viewer key beside them.
    let app =
        adult_in_production_with(|state| state.with_viewer_keys(&[VIEWER_KEY.parse().unwrap()]))
            .await;
    for path in ["/api/console/", "/api/console/models/adult-income"] {
        let answer = page(&app, path, None).await;
        assert_eq!(answer.status(), 303, "{path}");
        assert_eq!(answer.headers()[LOCATION], "/api/console/sign-in", "{path}");
    }
    let form = page(&app, "/api/console/sign-in", None).await;
    assert_eq!(form.status(), 200);
    let text = form.text().await.unwrap();
    assert!(text.contains(r#"<label for="key">Key</label>"#), "{text}");

    let refused = browser()
        .post(format!("{}/api/console/sign-in", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encoded("key", "not-a-key"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().get(SET_COOKIE).is_none());
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("That key is not valid.")
    );

    let (cookie, set) = sign_in(&app, VIEWER_KEY).await;
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/api/console",
        "Max-Age=28800",
    ] {
        assert!(set.contains(attribute), "{attribute} in {set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP on this machine: {set}");
    assert!(
        !set.contains(VIEWER_KEY),
        "the key never goes in the cookie"
    );

    let overview = page(&app, "/api/console/", Some(&cookie)).await;
    assert_eq!(overview.status(), 200);
    assert_eq!(overview.headers()["cache-control"], "no-store");
    let text = overview.text().await.unwrap();
    assert!(text.contains("viewer"), "{text}");
    // The same answer as the API's model list.
    let (_, models) = app.api(reqwest::Method::GET, "/api/models", None).await;
    let production = &models["models"][0]["production"];
    assert!(
        text.contains(r#"<a href="/api/console/models/adult-income">adult-income</a>"#),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "v{} ({})",
            production["version"],
            production["id"].as_str().unwrap()
        )),
        "{text}"
    );
    for kind in ["model.promoted", "model.gate_passed", "run.succeeded"] {
        assert!(
            text.contains(&format!("<code>{kind}</code>")),
            "{kind} in {text}"
        );
    }
    let css = page(&app, "/api/console/style.css", None).await;
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");

    // A cookie changed in any way is no session: a viewer who makes theirs say admin,
    // or a signature that is not the console's.
    let (name, value) = cookie.split_once('=').unwrap();
    let (payload, signature) = value.split_once('.').unwrap();
    let session = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert!(session.contains(r#""role":"viewer""#), "{session}");
    let promoted =
        URL_SAFE_NO_PAD.encode(session.replace(r#""role":"viewer""#, r#""role":"admin""#));
    let last = if signature.ends_with('A') { "B" } else { "A" };
    let flipped = format!("{}{last}", &signature[..signature.len() - 1]);
    for forged in [
        format!("{name}={promoted}.{signature}"),
        format!("{name}={payload}.{flipped}"),
    ] {
        assert_ne!(forged, cookie);
        assert_eq!(
            page(&app, "/api/console/", Some(&forged)).await.status(),
            303,
            "{forged}"
        );
    }

    // Signing out takes the session's CSRF token: a forged form has none.
    let csrf = text
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let sign_out = |token: String| {
        browser()
            .post(format!("{}/api/console/sign-out", app.base))
            .header(COOKIE, &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encoded("csrf", &token))
            .send()
    };
    assert_eq!(sign_out(String::new()).await.unwrap().status(), 403);
    assert_eq!(sign_out("0".repeat(32)).await.unwrap().status(), 403);
    let out = sign_out(csrf).await.unwrap();
    assert_eq!(out.status(), 303);
    let cleared = out.headers()[SET_COOKIE].to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");

    // A model's page: every version with its metrics and the gate's verdict, and every
    // release, the rollback marked.
    let mut config = crate::helpers::config();
    config["promotion"]["min_improvement"] = serde_json::json!(-0.02);
    config["promotion"]["max_regression"] = serde_json::json!(0.02);
    crate::helpers::put_config(&app, &config).await;
    let done = app
        .retrain(serde_json::json!({"model": "adult-income", "config_overrides": {"seed": 7}}))
        .await;
    assert_eq!(done["gate"]["passed"], true, "{done}");
    let (status, _) = app
        .api(
            reqwest::Method::POST,
            "/api/models/adult-income/rollback",
            Some(serde_json::json!({"reason": "complaints"})),
        )
        .await;
    assert_eq!(status, 200);
    let (cookie, _) = sign_in(&app, VIEWER_KEY).await;
    let model = page(&app, "/api/console/models/adult-income", Some(&cookie)).await;
    assert_eq!(model.status(), 200);
    let text = model.text().await.unwrap();
    for metric in ["roc_auc", "accuracy", "log_loss"] {
        assert!(text.contains(&format!(">{metric}</a></th>")), "{text}");
    }
    for v in [1, 2] {
        let (_, answer) = app
            .api(
                reqwest::Method::GET,
                &format!("/api/models/adult-income/versions/{v}"),
                None,
            )
            .await;
        let auc = answer["version"]["metrics"]["roc_auc"].as_f64().unwrap();
        assert!(
            text.contains(&format!(
                r#"<th scope="row"><a href="/api/console/models/adult-income/versions/{v}">v{v}</a></th>"#
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(r#"<td class="number">{auc:.4}</td>"#)),
            "v{v} roc_auc {auc} in {text}"
        );
    }
    let (_, history) = app
        .api(reqwest::Method::GET, "/api/models/adult-income", None)
        .await;
    let releases = history["releases"].as_array().unwrap();
    assert_eq!(releases.len(), 5, "{history}");
    for r in releases {
        let id = r["id"].as_str().unwrap();
        assert!(
            text.contains(&format!("<strong>{id}</strong>")),
            "{id} in {text}"
        );
    }
    assert!(
        text.contains(
            r#"<li id="production.3" class="release production rollback"><strong>production.3</strong>"#
        )
            && text.contains("(rolls back production.2)"),
        "{text}"
    );
    assert!(text.contains(">passed<"), "{text}");
    let missing = page(&app, "/api/console/models/no-such-model", Some(&cookie)).await;
    assert_eq!(missing.status(), 404);

    // An admin key signs in as admin.
    let (admin, _) = sign_in(&app, ADMIN_KEY).await;
    let text = page(&app, "/api/console/", Some(&admin))
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("· admin"), "{text}");

    // Every run, newest first, as the API lists them.
    let (_, runs) = app.api(reqwest::Method::GET, "/api/runs", None).await;
    let runs = runs["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    let text = page(&app, "/api/console/runs", Some(&admin))
        .await
        .text()
        .await
        .unwrap();
    for run in runs {
        let id = run["id"].as_str().unwrap();
        assert!(
            text.contains(&format!(r#"<tr id="{id}">"#)),
            "{id} in {text}"
        );
        assert_eq!(run["status"], "succeeded");
    }
    let newest = runs
        .iter()
        .max_by_key(|r| r["created_at"].as_str().unwrap().to_owned())
        .unwrap();
    let first = text.split("<tr id=\"").nth(1).unwrap();
    assert!(
        first.starts_with(newest["id"].as_str().unwrap()),
        "newest first: {first}"
    );
    assert_eq!(
        text.matches(r#"class="status-succeeded">succeeded<"#)
            .count(),
        2,
        "{text}"
    );

    // The audit trail, newest first, with the chain's verification; an edited record
    // shows as a broken chain, not as a page that fails.
    let verified = sluice_shared::audit::AuditLog::new(app.store.clone())
        .verify()
        .await
        .unwrap();
    let audit = page(&app, "/api/console/audit?verify=all", Some(&admin)).await;
    assert_eq!(audit.status(), 200);
    let text = audit.text().await.unwrap();
    assert!(
        text.contains(&format!(
            "The whole chain verifies: {} records",
            verified.records
        )),
        "{text}"
    );
    let first_row = text.split(r#"<tr><th scope="row">"#).nth(1).unwrap();
    assert!(
        first_row.starts_with(&format!("{}<", verified.records)),
        "newest first: {first_row}"
    );
    let record = app.root().join("audit/records/000000000002.json");
    let original = std::fs::read_to_string(&record).unwrap();
    let edited = original.replacen("\"reason\": \"", "\"reason\": \"edited: ", 1);
    assert_ne!(edited, original);
    std::fs::write(&record, edited).unwrap();
    let text = page(&app, "/api/console/audit", Some(&admin))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("The chain does not verify: audit record 2 is broken"),
        "{text}"
    );
}

/// A form's fields, as a browser sends them.
fn form(fields: &[(&str, &str)]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        out.append_pair(k, v);
    }
    out.finish()
}

/// Text as the templates escape it.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// The CSRF token a page's forms carry.
fn csrf_of(page: &str) -> String {
    page.split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned()
}

async fn text_of(app: &TestApp, path: &str, cookie: &str) -> (u16, String) {
    let answer = page(app, path, Some(cookie)).await;
    let status = answer.status().as_u16();
    (status, answer.text().await.unwrap())
}

async fn post_form(app: &TestApp, path: &str, cookie: &str, body: String) -> reqwest::Response {
    browser()
        .post(format!("{}{path}", app.base))
        .header(COOKIE, cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Each page renders a use case's answer: datasets with their profiles drawn bar for
/// bin, a quarantine report with its rules and lines, versions compared, production at
/// a time, lineage from a version and from a prediction's request id, a run's logs,
/// monitoring; approve and rollback go through the API's use cases and into the audit
/// trail, for admins only and only with the session's CSRF token and a reason.
#[tokio::test]
async fn every_page_renders_the_use_cases_answer_and_changes_go_through_them() {
    let app =
        adult_in_production_with(|state| state.with_viewer_keys(&[VIEWER_KEY.parse().unwrap()]))
            .await;
    let bad = app
        .ingest(
            "adult",
            "broken.csv",
            b"39, State-gov, 77516\nnot a row\n".to_vec(),
        )
        .await;
    assert_eq!(bad["status"], "quarantined", "{bad}");
    let report = app.report(&bad).await;
    let (admin, _) = sign_in(&app, ADMIN_KEY).await;

    // Datasets: each with its versions and quarantined uploads.
    let (status, text) = text_of(&app, "/api/console/datasets", &admin).await;
    assert_eq!(status, 200, "{text}");
    for dataset in ["adult", "adult-eval"] {
        assert!(
            text.contains(&format!(
                r#"<a href="/api/console/datasets/{dataset}">{dataset}</a>"#
            )),
            "{dataset} in {text}"
        );
    }
    let (status, text) = text_of(&app, "/api/console/datasets/adult", &admin).await;
    assert_eq!(status, 200, "{text}");
    let versions = app.versions("adult").await;
    for v in &versions {
        assert!(
            text.contains(&format!(
                r#"/api/console/datasets/adult/versions/{v}">v{v}</a>"#
            )),
            "v{v} in {text}"
        );
    }
    let id = report
        .copy
        .key
        .as_str()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        text.contains(&format!("/api/console/datasets/adult/quarantine/{id}")),
        "{id} in {text}"
    );

    // The quarantine report: every broken rule with its count and example lines.
    let (status, text) = text_of(
        &app,
        &format!("/api/console/datasets/adult/quarantine/{id}"),
        &admin,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(!report.validation.violations.is_empty());
    for v in &report.validation.violations {
        let rule = serde_json::to_value(v.rule).unwrap();
        assert!(
            text.contains(&format!("<code>{}</code>", rule.as_str().unwrap())),
            "{rule} in {text}"
        );
        assert!(text.contains(&format!(": {} value", v.count)), "{text}");
        for e in &v.examples {
            assert!(
                text.contains(&format!(r#"<tr><th scope="row">{}</th>"#, e.row)),
                "line {} in {text}",
                e.row
            );
        }
    }

    // A version: its profile drawn bar for bin, and the model trained on it.
    let (_, lineage) = app
        .api(
            reqwest::Method::GET,
            "/api/models/adult-income/versions/1/lineage",
            None,
        )
        .await;
    let trained_on = lineage["dataset"]["version"].as_u64().unwrap() as u32;
    let manifest = app.manifest("adult", trained_on).await;
    let (status, text) = text_of(
        &app,
        &format!("/api/console/datasets/adult/versions/{trained_on}"),
        &admin,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains(&manifest.content_sha256), "{text}");
    assert!(
        text.contains(
            r#"<a href="/api/console/models/adult-income/versions/1">adult-income@v1</a>"#
        ),
        "{text}"
    );
    for column in &manifest.profile {
        let figure = text
            .split(&format!(r#"data-column="{}">"#, column.name))
            .nth(1)
            .and_then(|rest| rest.split("</figure>").next())
            .unwrap_or_else(|| panic!("no figure for {}", column.name));
        let bars = figure.matches(r##"fill="#0B6BCB""##).count();
        let expected = column
            .numeric
            .as_ref()
            .map_or(column.top_values.len(), |n| n.histogram.len());
        assert!(expected > 0, "{}", column.name);
        assert_eq!(bars, expected, "bars of {}", column.name);
    }

    // Versions compared, and production at a time.
    let (status, text) = text_of(
        &app,
        "/api/console/models/adult-income/compare?a=1&b=1",
        &admin,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("The same inputs, outputs and classes."),
        "{text}"
    );
    assert_eq!(text.matches(r#"<tr class="metric">"#).count(), 3, "{text}");
    let (status, text) = text_of(
        &app,
        "/api/console/models/adult-income/compare?a=one&b=1",
        &admin,
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains(&escaped(r#"a: "one" is not a version number"#)),
        "{text}"
    );
    let (_, history) = app
        .api(reqwest::Method::GET, "/api/models/adult-income", None)
        .await;
    let released: chrono::DateTime<chrono::Utc> = history["releases"][0]["at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let before = (released - chrono::Duration::seconds(5)).format("%Y-%m-%dT%H:%M:%S");
    let after = (released + chrono::Duration::seconds(1)).to_rfc3339();
    let (_, text) = text_of(
        &app,
        &format!("/api/console/models/adult-income?at={before}"),
        &admin,
    )
    .await;
    assert!(text.contains("nothing was in production"), "{text}");
    let (_, text) = text_of(
        &app,
        &format!(
            "/api/console/models/adult-income?at={}",
            url::form_urlencoded::byte_serialize(after.as_bytes()).collect::<String>()
        ),
        &admin,
    )
    .await;
    assert!(
        text.contains(
            "production was <a href=\"/api/console/models/adult-income/versions/1\">v1</a>"
        ),
        "{text}"
    );
    let (status, text) = text_of(
        &app,
        "/api/console/models/adult-income?at=yesterday",
        &admin,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        text.contains(&escaped(r#"at: "yesterday" is not a time"#)),
        "{text}"
    );

    // Lineage from the version, and from a prediction's request id.
    let (status, text) = text_of(&app, "/api/console/models/adult-income/versions/1", &admin).await;
    assert_eq!(status, 200, "{text}");
    let run = lineage["run"]["id"].as_str().unwrap();
    for link in [
        format!("/api/console/datasets/adult/versions/{trained_on}"),
        format!("/api/console/runs/{run}"),
    ] {
        assert!(text.contains(&link), "{link} in {text}");
    }
    assert!(
        text.contains(r#"<svg role="img" aria-label="Lineage of adult-income@v1""#),
        "{text}"
    );
    let mut config = crate::helpers::config();
    config["prediction_log"] = serde_json::json!({"sample": 1.0});
    crate::helpers::put_config(&app, &config).await;
    let (records, _) = crate::helpers::records(&app, &[0, 1, 2]);
    let scorer = crate::helpers::scorer(&app);
    let body = serde_json::json!({ "data": records }).to_string();
    scorer
        .score(
            &sluice_shared::registry::ModelName::parse("adult-income").unwrap(),
            &sluice_shared::scoring::Target::Alias("production".into()),
            body.as_bytes(),
            "console-request-1",
        )
        .await
        .unwrap();
    assert!(!scorer.flush_log().await.unwrap().is_empty());
    let (status, text) = text_of(
        &app,
        "/api/console/models/adult-income/predictions?request_id=console-request-1",
        &admin,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("3 row(s) at"), "{text}");
    assert!(text.contains("served by production.1"), "{text}");
    let (status, _) = text_of(
        &app,
        "/api/console/models/adult-income/predictions?request_id=never-sent",
        &admin,
    )
    .await;
    assert_eq!(status, 404);

    // A run's page shows its training logs; monitoring renders.
    let (status, text) = text_of(&app, &format!("/api/console/runs/{run}"), &admin).await;
    assert_eq!(status, 200, "{text}");
    let logs = std::fs::read_to_string(
        app.root()
            .join(sluice_shared::runs::logs_key(run, 1).unwrap().as_str()),
    )
    .expect("local compute keeps the logs");
    let line = logs.lines().find(|l| !l.trim().is_empty()).unwrap();
    assert!(text.contains(&escaped(line)), "{line} in {text}");
    let (status, text) = text_of(&app, "/api/console/models/adult-income/monitoring", &admin).await;
    assert_eq!(status, 200, "{text}");

    // Approve and rollback: through the API's use cases, for admins, with the session's
    // token and a reason.
    let mut manual = crate::helpers::config();
    manual["promotion"]["approval"] = serde_json::json!("manual");
    manual["promotion"]["min_improvement"] = serde_json::json!(-0.02);
    manual["promotion"]["max_regression"] = serde_json::json!(0.02);
    crate::helpers::put_config(&app, &manual).await;
    let done = app
        .retrain(serde_json::json!({"model": "adult-income", "config_overrides": {"seed": 9}}))
        .await;
    assert_eq!(done["gate"]["awaiting_approval"], true, "{done}");
    let (_, text) = text_of(&app, "/api/console/models/adult-income", &admin).await;
    assert!(text.contains("Approve v2 for production"), "{text}");
    let csrf = csrf_of(&text);
    let approve = "/api/console/models/adult-income/versions/2/approve";
    let (viewer, _) = sign_in(&app, VIEWER_KEY).await;
    let (_, viewer_page) = text_of(&app, "/api/console/models/adult-income", &viewer).await;
    assert!(
        !viewer_page.contains("Approve v2"),
        "no button for a viewer"
    );
    for (cookie, body, status) in [
        (&admin, form(&[("reason", "looks good")]), 403),
        (
            &admin,
            form(&[("csrf", &"0".repeat(32)), ("reason", "looks good")]),
            403,
        ),
        (&admin, form(&[("csrf", &csrf), ("reason", " ")]), 400),
        (
            &viewer,
            form(&[("csrf", &csrf_of(&viewer_page)), ("reason", "looks good")]),
            403,
        ),
    ] {
        let answer = post_form(&app, approve, cookie, body).await;
        assert_eq!(answer.status(), status);
    }
    let production = || async {
        let (_, models) = app.api(reqwest::Method::GET, "/api/models", None).await;
        models["models"][0]["production"]["version"].clone()
    };
    assert_eq!(production().await, 1, "nothing changed");
    let answer = post_form(
        &app,
        approve,
        &admin,
        form(&[("csrf", &csrf), ("reason", "reviewed the slices")]),
    )
    .await;
    assert_eq!(answer.status(), 303);
    assert_eq!(production().await, 2);
    let answer = post_form(
        &app,
        "/api/console/models/adult-income/rollback",
        &admin,
        form(&[
            ("csrf", &csrf),
            ("reason", "complaints from the call centre"),
        ]),
    )
    .await;
    assert_eq!(answer.status(), 303);
    assert_eq!(production().await, 1);
    let records = sluice_shared::audit::AuditLog::new(app.store.clone())
        .recent(10)
        .await
        .unwrap();
    let actor = {
        use sha2::Digest;
        format!("key:{}", &hex::encode(sha2::Sha256::digest(ADMIN_KEY))[..8])
    };
    for (action, reason) in [
        (
            sluice_shared::audit::Action::Approved,
            "reviewed the slices",
        ),
        (
            sluice_shared::audit::Action::RolledBack,
            "complaints from the call centre",
        ),
    ] {
        assert!(
            records.iter().any(|r| r.entry.action == action
                && r.entry.reason.ends_with(reason)
                && r.entry.actor == actor),
            "{action:?} by {actor}: {reason}"
        );
    }
}

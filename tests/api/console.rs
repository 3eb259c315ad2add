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
        assert!(
            text.contains(&format!(r#"<th scope="col">{metric}</th>"#)),
            "{text}"
        );
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
            text.contains(&format!(r#"<th scope="row">v{v}</th>"#)),
            "{text}"
        );
        assert!(
            text.contains(&format!("<td>{auc:.4}</td>")),
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
        text.contains(r#"<li class="rollback"><strong>production.3</strong>"#)
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
    let audit = page(&app, "/api/console/audit", Some(&admin)).await;
    assert_eq!(audit.status(), 200);
    let text = audit.text().await.unwrap();
    assert!(
        text.contains(&format!("The chain verifies: {} records", verified.records)),
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

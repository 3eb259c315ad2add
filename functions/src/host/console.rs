//! `Console` (HTTP, forwarded): the web console at `/api/console/`, served by the same
//! binary as the API, from assets compiled into it. A page is a rendering of the same
//! use-case answers the API and the CLI give (`shared`'s catalog and audit trail).
//!
//! Access: nothing is readable without a session. The sign-in page takes an admin or a
//! viewer key and answers with a session cookie: HttpOnly, SameSite=Strict, Secure
//! outside this machine, eight hours. The cookie is the session itself (its role, who,
//! its expiry and its CSRF token), signed with HMAC-SHA256 under a key derived from the
//! configured keys' digests: every instance with the same keys accepts it, and rotating
//! the keys ends every session. A change made from a page (sign-out, and later approve
//! and rollback) must carry the session's CSRF token in its form.

use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::host::state::AppState;

/// Where the console lives (the Functions host's `api/` route prefix, as every HTTP
/// function; `sluice dev` and `sluice serve` the same).
pub const ROOT: &str = "/api/console";
const COOKIE: &str = "sluice_session";
/// How long a session lasts.
const SESSION_SECONDS: i64 = 8 * 3600;
const STYLE: &str = include_str!("../../templates/console/style.css");

/// The console's routes, under [`ROOT`] (with and without its trailing slash); any
/// other path under it is the sign-in page without a session, else a 404.
pub fn router() -> Router<AppState> {
    let at = |path: &str| format!("{ROOT}{path}");
    Router::new()
        .route(ROOT, get(overview))
        .route(&at("/"), get(overview))
        .route(&at("/sign-in"), get(sign_in_page).post(sign_in))
        .route(&at("/sign-out"), post(sign_out))
        .route(&at("/style.css"), get(style))
        .route(&at("/models/{name}"), get(model_page))
        .route(&at("/audit"), get(audit_page))
        .route(&at("/runs"), get(runs_page))
        .route(&at("/{*rest}"), any(not_found))
}

/// Who a session is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Viewer,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }
}

/// A signed-in session, as its cookie carries it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Session {
    role: Role,
    /// The key's fingerprint (as the audit trail names an API caller).
    actor: String,
    /// Unix seconds.
    expires: i64,
    /// What a form that changes something must carry.
    csrf: String,
}

/// The signing key: derived from every configured key, so all instances agree.
fn signing_key(state: &AppState) -> Option<[u8; 32]> {
    let digests = state.admin_keys.fingerprints_for_signing();
    let viewers = state.viewer_keys.fingerprints_for_signing();
    if digests.is_empty() && viewers.is_empty() {
        return None;
    }
    let mut hash = Sha256::new();
    hash.update(b"sluice-console-session-v1");
    for d in digests.iter().chain(&viewers) {
        hash.update(d);
    }
    Some(hash.finalize().into())
}

fn sign(key: &[u8; 32], payload: &str) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(payload.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

impl Session {
    fn cookie_value(&self, key: &[u8; 32]) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("sessions serialise"));
        let signature = sign(key, &payload);
        format!("{payload}.{signature}")
    }

    /// The session a request's cookie holds, if it is signed, unexpired and readable.
    fn from_request(state: &AppState, headers: &HeaderMap) -> Option<Session> {
        let key = signing_key(state)?;
        let value = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))?;
        let (payload, signature) = value.split_once('.')?;
        let expected = sign(&key, payload);
        if !bool::from(expected.as_bytes().ct_eq(signature.as_bytes())) {
            return None;
        }
        let session: Session =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        (session.expires > chrono::Utc::now().timestamp()).then_some(session)
    }
}

/// A page's session: without one, the request is sent to the sign-in page.
impl axum::extract::FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Response> {
        Session::from_request(state, &parts.headers).ok_or_else(to_sign_in)
    }
}

/// Whether the request came to this machine (then the cookie may go without `Secure`,
/// as `sluice dev` serves plain HTTP).
fn local(headers: &HeaderMap) -> bool {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let name = host.rsplit_once(':').map_or(host, |(n, _)| n);
    matches!(name, "localhost" | "127.0.0.1" | "[::1]")
}

fn set_cookie(value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path={ROOT}; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("cookie values are ASCII")
}

fn html(status: StatusCode, page: impl Template) -> Response {
    match page.render() {
        Ok(body) => (
            status,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a console page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

fn to_sign_in() -> Response {
    Redirect::to(&format!("{ROOT}/sign-in")).into_response()
}

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInPage<'a> {
    root: &'a str,
    problem: Option<&'a str>,
}

async fn sign_in_page() -> Response {
    html(
        StatusCode::OK,
        SignInPage {
            root: ROOT,
            problem: None,
        },
    )
}

#[derive(Deserialize)]
struct SignInForm {
    key: String,
}

/// Exchanges a key for a session: admin keys first, then viewer keys.
async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Response {
    let refuse = |problem| {
        html(
            StatusCode::UNAUTHORIZED,
            SignInPage {
                root: ROOT,
                problem: Some(problem),
            },
        )
    };
    let Ok(Form(form)) = form else {
        return refuse("Send the form with a key.");
    };
    let mut presented = HeaderMap::new();
    let Ok(value) = HeaderValue::from_str(form.key.trim()) else {
        return refuse("That key is not valid.");
    };
    presented.insert("x-functions-key", value);
    let (role, actor) = match (
        state.admin_keys.check(&presented),
        state.viewer_keys.check(&presented),
    ) {
        (Ok(actor), _) => (Role::Admin, actor),
        (_, Ok(actor)) => (Role::Viewer, actor),
        _ => return refuse("That key is not valid."),
    };
    let Some(key) = signing_key(&state) else {
        return refuse("No keys are configured.");
    };
    let session = Session {
        role,
        actor,
        expires: chrono::Utc::now().timestamp() + SESSION_SECONDS,
        csrf: hex::encode(uuid::Uuid::new_v4().as_bytes()),
    };
    tracing::info!(role = ?session.role, actor = %session.actor, "console session started");
    let mut response = Redirect::to(&format!("{ROOT}/")).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(
            &session.cookie_value(&key),
            SESSION_SECONDS,
            !local(&headers),
        ),
    );
    response
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Ends the session: only with the session's own CSRF token (a forged cross-site form
/// has no way to know it).
async fn sign_out(
    session: Session,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let token = form.map(|Form(f)| f.csrf).unwrap_or_default();
    if !bool::from(token.as_bytes().ct_eq(session.csrf.as_bytes())) {
        return (
            StatusCode::FORBIDDEN,
            "the form's CSRF token is missing or wrong",
        )
            .into_response();
    }
    let mut response = to_sign_in();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie("", 0, !local(&headers)));
    response
}

/// One row of the models table.
struct ModelRow {
    name: String,
    task: String,
    versions: usize,
    production: String,
    staging: String,
}

/// One of the latest events.
struct EventRow {
    time: String,
    kind: String,
    subject: String,
    actor: String,
    reason: String,
}

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage<'a> {
    root: &'a str,
    role: &'a str,
    actor: &'a str,
    csrf: &'a str,
    models: Vec<ModelRow>,
    events: Vec<EventRow>,
}

/// The overview: every model with its production and staging release, and the latest
/// events (the audit trail, told as the notifications tell it).
async fn overview(State(state): State<AppState>, session: Session) -> Response {
    let release = |r: &Option<sluice_shared::registry::Release>| {
        r.as_ref()
            .map_or("—".to_owned(), |r| format!("v{} ({})", r.version, r.id))
    };
    let models = match sluice_shared::catalog::models(state.runs.registry()).await {
        Ok(models) => models,
        Err(e) => return crate::host::error::AppError::from(e).into_response(),
    };
    let events = match sluice_shared::audit::AuditLog::new(state.store.clone())
        .recent(20)
        .await
    {
        Ok(records) => records,
        Err(e) => {
            tracing::warn!(error = %e, "the audit trail could not be read");
            return crate::host::error::AppError::unavailable(e).into_response();
        }
    };
    let page = OverviewPage {
        root: ROOT,
        role: session.role.name(),
        actor: &session.actor,
        csrf: &session.csrf,
        models: models
            .iter()
            .map(|m| ModelRow {
                name: m.model.to_string(),
                task: m.task.map_or("—", |t| t.as_str()).to_owned(),
                versions: m.versions.len(),
                production: release(&m.production),
                staging: release(&m.staging),
            })
            .collect(),
        events: events
            .iter()
            .map(|r| {
                let e = sluice_shared::notify::Event::of(r);
                EventRow {
                    time: e.time.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                    kind: e.kind,
                    subject: e.subject,
                    actor: r.entry.actor.clone(),
                    reason: r.entry.reason.clone(),
                }
            })
            .collect(),
    };
    html(StatusCode::OK, page)
}

/// One version on a model's page.
struct VersionRow {
    version: u32,
    registered: String,
    run: String,
    dataset: String,
    /// The task's metrics, in the task's order.
    metrics: Vec<(String, String)>,
    /// `passed`, `failed`, `awaiting approval`, or `—` (never gated).
    gate: String,
    reasons: String,
}

/// One release on a model's page (its timeline, newest first).
struct ReleaseRow {
    id: String,
    alias: String,
    version: u32,
    at: String,
    actor: String,
    reason: String,
    /// The release it rolled back, for a rollback.
    rolls_back: Option<String>,
}

#[derive(Template)]
#[template(path = "console/model.html")]
struct ModelPage<'a> {
    root: &'a str,
    role: &'a str,
    actor: &'a str,
    csrf: &'a str,
    model: String,
    metric_names: Vec<String>,
    versions: Vec<VersionRow>,
    releases: Vec<ReleaseRow>,
}

/// A model: its versions with their metrics and the gate's verdicts, and every release
/// (rollbacks marked), from the catalog's answers.
async fn model_page(
    State(state): State<AppState>,
    session: Session,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    let Ok(model) = sluice_shared::registry::ModelName::parse(&name) else {
        return (StatusCode::NOT_FOUND, "no such model").into_response();
    };
    let registry = state.runs.registry();
    let (versions, history) = match (
        sluice_shared::catalog::versions(registry, &model).await,
        sluice_shared::catalog::history(registry, &model).await,
    ) {
        (Ok(v), Ok(h)) => (v, h),
        (Err(e), _) => return crate::host::error::AppError::from(e).into_response(),
        (_, Err(e)) => return crate::host::error::AppError::from(e).into_response(),
    };
    if versions.is_empty() {
        return (StatusCode::NOT_FOUND, "no such model").into_response();
    }
    let task = versions[0].version.signature.task;
    let metric_names: Vec<String> = task.metrics().iter().map(|m| (*m).to_owned()).collect();
    let time = |t: &chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    let page = ModelPage {
        root: ROOT,
        role: session.role.name(),
        actor: &session.actor,
        csrf: &session.csrf,
        model: model.to_string(),
        versions: versions
            .iter()
            .map(|v| {
                let m = &v.version;
                let (gate, reasons) = match &v.gate {
                    None => ("—".to_owned(), String::new()),
                    Some(g) if !g.verdict.passed => {
                        ("failed".to_owned(), g.verdict.reasons.join("; "))
                    }
                    Some(g) if g.awaiting_approval => {
                        ("awaiting approval".to_owned(), String::new())
                    }
                    Some(_) => ("passed".to_owned(), String::new()),
                };
                VersionRow {
                    version: m.version,
                    registered: time(&m.registered_at),
                    run: m.lineage.run_id.clone(),
                    dataset: format!("{}@{}", m.lineage.dataset, m.lineage.dataset_version),
                    metrics: metric_names
                        .iter()
                        .map(|n| {
                            let value = m
                                .metrics
                                .get(n)
                                .map_or("—".to_owned(), |x| format!("{x:.4}"));
                            (n.clone(), value)
                        })
                        .collect(),
                    gate,
                    reasons,
                }
            })
            .collect(),
        releases: history
            .releases
            .iter()
            .rev()
            .map(|r| ReleaseRow {
                id: r.id.clone(),
                alias: r.alias.clone(),
                version: r.version,
                at: time(&r.at),
                actor: r.actor.clone(),
                reason: r.reason.clone(),
                rolls_back: r.rolls_back.clone(),
            })
            .collect(),
        metric_names,
    };
    html(StatusCode::OK, page)
}

/// One run on the runs page.
struct RunRow {
    id: String,
    model: String,
    status: String,
    trigger: String,
    requested_by: String,
    reason: String,
    data: String,
    created: String,
    /// Seconds from start to finish, once finished.
    took: String,
    attempt: u32,
    model_version: Option<u32>,
    error: String,
}

#[derive(Template)]
#[template(path = "console/runs.html")]
struct RunsPage<'a> {
    root: &'a str,
    role: &'a str,
    actor: &'a str,
    csrf: &'a str,
    runs: Vec<RunRow>,
}

/// Every run, newest first: what the API's `GET /api/runs` answers.
async fn runs_page(State(state): State<AppState>, session: Session) -> Response {
    let mut runs = match state.runs.list().await {
        Ok(runs) => runs,
        Err(e) => return crate::host::error::AppError::from(e).into_response(),
    };
    runs.sort_by_key(|r| std::cmp::Reverse(r.created_at));
    let page = RunsPage {
        root: ROOT,
        role: session.role.name(),
        actor: &session.actor,
        csrf: &session.csrf,
        runs: runs
            .into_iter()
            .map(|r| RunRow {
                status: serde_json::to_value(r.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                took: match (r.started_at, r.finished_at) {
                    (Some(s), Some(f)) => {
                        format!("{:.1} s", (f - s).num_milliseconds() as f64 / 1000.0)
                    }
                    _ => "—".to_owned(),
                },
                created: r.created_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                data: format!("{}@{}", r.dataset, r.dataset_version),
                model: r.model.to_string(),
                id: r.id,
                trigger: r.trigger,
                requested_by: r.requested_by,
                reason: r.reason,
                attempt: r.attempt,
                model_version: r.model_version,
                error: r.error.unwrap_or_default(),
            })
            .collect(),
    };
    html(StatusCode::OK, page)
}

/// How many records the audit page shows.
const AUDIT_SHOWN: usize = 200;

/// One audit record on its page.
struct RecordRow {
    seq: u64,
    time: String,
    action: String,
    actor: String,
    subject: String,
    reason: String,
    hash: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage<'a> {
    root: &'a str,
    role: &'a str,
    actor: &'a str,
    csrf: &'a str,
    /// The chain's verification: `Ok(records)` or where it breaks.
    verified: Result<u64, String>,
    shown: usize,
    records: Vec<RecordRow>,
}

/// The audit trail, newest first, with the chain's verification (what `sluice audit
/// verify` checks).
async fn audit_page(State(state): State<AppState>, session: Session) -> Response {
    let audit = sluice_shared::audit::AuditLog::new(state.store.clone());
    let verified = match audit.verify().await {
        Ok(v) => Ok(v.records),
        Err(sluice_shared::audit::AuditError::Storage(e)) => {
            return crate::host::error::AppError::unavailable(e).into_response();
        }
        Err(broken) => Err(broken.to_string()),
    };
    let records = match audit.recent(AUDIT_SHOWN).await {
        Ok(records) => records,
        Err(e) => return crate::host::error::AppError::unavailable(e).into_response(),
    };
    let page = AuditPage {
        root: ROOT,
        role: session.role.name(),
        actor: &session.actor,
        csrf: &session.csrf,
        verified,
        shown: AUDIT_SHOWN,
        records: records
            .into_iter()
            .map(|r| RecordRow {
                seq: r.seq,
                time: r.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                action: serde_json::to_value(r.entry.action)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                actor: r.entry.actor,
                subject: r.entry.subject,
                reason: r.entry.reason,
                hash: r.hash.chars().take(12).collect(),
            })
            .collect(),
    };
    html(StatusCode::OK, page)
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        STYLE,
    )
        .into_response()
}

async fn not_found(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if Session::from_request(&state, &headers).is_none() {
        return to_sign_in();
    }
    (StatusCode::NOT_FOUND, "no such page").into_response()
}

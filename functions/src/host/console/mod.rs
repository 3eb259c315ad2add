//! `Console` (HTTP, forwarded): the web console at `/api/console/`, served by the same
//! binary as the API, from assets compiled into it. A page is a rendering of the same
//! use-case answers the API and the CLI give (`shared`'s catalog, runs, monitor and
//! audit trail), never a second query.
//!
//! Nothing is readable without a session ([`session`]). The pages need no script: they
//! read with JavaScript off, sort by links, and draw their charts as SVG on the server
//! ([`chart`]). A change made from a page (sign-out, approve, rollback) is a form that
//! must carry the session's CSRF token, and approve and rollback are for admin sessions
//! only; they go through the same use cases, audited alike, as the API's.
//!
//! Why askama: its templates are checked against their data when the binary compiles,
//! and they are compiled in, so nothing is read or fetched at run time.

mod audit;
mod chart;
mod datasets;
mod models;
mod overview;
mod runs;
pub mod session;

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};

use crate::host::state::AppState;
use session::Session;

/// Where the console lives (the Functions host's `api/` route prefix, as every HTTP
/// function; `sluice dev` and `sluice serve` the same).
pub const ROOT: &str = "/api/console";
const STYLE: &str = include_str!("../../../templates/console/style.css");

/// The console's routes, under [`ROOT`] (with and without its trailing slash); any
/// other path under it is the sign-in page without a session, else a 404.
pub fn router() -> Router<AppState> {
    let at = |path: &str| format!("{ROOT}{path}");
    Router::new()
        .route(ROOT, get(overview::page))
        .route(&at("/"), get(overview::page))
        .route(
            &at("/sign-in"),
            get(session::sign_in_page).post(session::sign_in),
        )
        .route(&at("/sign-out"), post(session::sign_out))
        .route(&at("/style.css"), get(style))
        .route(&at("/datasets"), get(datasets::list))
        .route(&at("/datasets/{name}"), get(datasets::dataset))
        .route(
            &at("/datasets/{name}/versions/{version}"),
            get(datasets::version),
        )
        .route(
            &at("/datasets/{name}/quarantine/{id}"),
            get(datasets::quarantine),
        )
        .route(&at("/models/{name}"), get(models::page))
        .route(&at("/models/{name}/compare"), get(models::compare))
        .route(
            &at("/models/{name}/versions/{version}"),
            get(models::lineage),
        )
        .route(
            &at("/models/{name}/versions/{version}/approve"),
            post(models::approve),
        )
        .route(&at("/models/{name}/rollback"), post(models::rollback))
        .route(&at("/models/{name}/predictions"), get(models::prediction))
        .route(&at("/models/{name}/monitoring"), get(models::monitoring))
        .route(&at("/runs"), get(runs::list))
        .route(&at("/runs/{id}"), get(runs::run))
        .route(&at("/audit"), get(audit::page))
        .route(&at("/{*rest}"), any(not_found))
}

/// What every signed-in page shows around its content: who is signed in, and the token
/// its forms carry.
pub struct Frame {
    pub root: &'static str,
    pub signed_in: bool,
    pub role: &'static str,
    pub actor: String,
    pub csrf: String,
    /// Whether the page may offer changes (approve, rollback).
    pub admin: bool,
}

impl Frame {
    fn of(session: &Session) -> Self {
        Self {
            root: ROOT,
            signed_in: true,
            role: session.role.name(),
            actor: session.actor.clone(),
            csrf: session.csrf.clone(),
            admin: session.role == session::Role::Admin,
        }
    }

    fn signed_out() -> Self {
        Self {
            root: ROOT,
            signed_in: false,
            role: "",
            actor: String::new(),
            csrf: String::new(),
            admin: false,
        }
    }
}

/// A page as an HTML response (never cached: pages show the store as it is).
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

#[derive(Template)]
#[template(path = "console/problem.html")]
struct ProblemPage {
    frame: Frame,
    title: &'static str,
    problem: String,
}

/// A page that cannot be shown as asked, rendered as a page saying why, with the
/// status the API would answer with. Handlers return it with `?`.
pub struct Problem(Box<(StatusCode, ProblemPage)>);

impl Problem {
    fn new(
        session: &Session,
        status: StatusCode,
        title: &'static str,
        problem: impl std::fmt::Display,
    ) -> Self {
        Self(Box::new((
            status,
            ProblemPage {
                frame: Frame::of(session),
                title,
                problem: problem.to_string(),
            },
        )))
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let (status, page) = *self.0;
        html(status, page)
    }
}

/// What a page handler answers.
type Page = Result<Response, Problem>;

/// Something asked for is not there (404).
fn missing(session: &Session, what: impl std::fmt::Display) -> Problem {
    Problem::new(session, StatusCode::NOT_FOUND, "Not found", what)
}

/// A request refused as sent (400): what and where.
fn refused(session: &Session, problem: impl std::fmt::Display) -> Problem {
    Problem::new(session, StatusCode::BAD_REQUEST, "Not understood", problem)
}

/// Why a use case refused or failed, with the status and message the API would give.
fn failed(session: &Session, error: impl Into<crate::host::error::AppError>) -> Problem {
    let error = error.into();
    let title = error.status().canonical_reason().unwrap_or("Problem");
    Problem::new(session, error.status(), title, error.message())
}

/// The store could not answer (503): the error goes to the log, not the page.
fn unavailable(session: &Session, error: impl std::fmt::Display) -> Problem {
    tracing::warn!(error = %error, "a console page could not read the store");
    Problem::new(
        session,
        StatusCode::SERVICE_UNAVAILABLE,
        "Unavailable",
        "The store could not be read; try again shortly.",
    )
}

/// The console's page for an audit or event subject (`model:m@3` or `models/m/versions/3`),
/// if it has one.
fn link(subject: &str) -> Option<String> {
    let path = sluice_shared::notify::subject_path(subject);
    let mut parts = path.split('/');
    let ours = matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some("models" | "datasets"), Some(_), None, None)
            | (
                Some("models" | "datasets"),
                Some(_),
                Some("versions"),
                Some(_)
            )
            | (Some("runs"), Some(_), None, None)
    );
    ours.then(|| format!("{ROOT}/{path}"))
}

/// How pages show a time.
fn when(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A value's serde name (statuses, actions), as the API spells it.
fn serde_name(value: impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
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
    match Session::from_request(&state, &headers) {
        None => session::to_sign_in(),
        Some(session) => missing(&session, "There is no such page.").into_response(),
    }
}

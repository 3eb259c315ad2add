//! Console sessions: the sign-in page exchanges an admin or a viewer key for a cookie
//! that *is* the session (its role, who, its expiry and its CSRF token), signed with
//! HMAC-SHA256 under a key derived from the configured keys' digests: every instance
//! with the same keys accepts it, and rotating the keys ends every session. The cookie
//! is HttpOnly, SameSite=Strict, Secure outside this machine, and lasts eight hours.
//!
//! Why not a server-side session table: the Function App scales out, and a signed
//! cookie needs no shared store read on every page.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Frame, Problem, ROOT, html};
use crate::host::state::AppState;

const COOKIE: &str = "sluice_session";
/// How long a session lasts.
const SESSION_SECONDS: i64 = 8 * 3600;

/// Who a session is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Viewer,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }
}

/// A signed-in session, as its cookie carries it. As an extractor, a request without
/// one is sent to the sign-in page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub role: Role,
    /// The key's fingerprint (as the audit trail names an API caller).
    pub actor: String,
    /// Unix seconds.
    expires: i64,
    /// What a form that changes something must carry.
    pub csrf: String,
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
    pub fn from_request(state: &AppState, headers: &HeaderMap) -> Option<Session> {
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

    /// Refuses (403) a form without this session's CSRF token (a forged cross-site form
    /// has no way to know it); compared in constant time.
    pub fn check_csrf(&self, token: &str) -> Result<(), Problem> {
        if bool::from(token.as_bytes().ct_eq(self.csrf.as_bytes())) {
            Ok(())
        } else {
            Err(Problem::new(
                self,
                StatusCode::FORBIDDEN,
                "Forbidden",
                "The form's CSRF token is missing or wrong.",
            ))
        }
    }
}

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

pub fn to_sign_in() -> Response {
    Redirect::to(&format!("{ROOT}/sign-in")).into_response()
}

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInPage<'a> {
    frame: Frame,
    problem: Option<&'a str>,
}

pub async fn sign_in_page() -> Response {
    html(
        StatusCode::OK,
        SignInPage {
            frame: Frame::signed_out(),
            problem: None,
        },
    )
}

#[derive(Deserialize)]
pub struct SignInForm {
    key: String,
}

/// Exchanges a key for a session: admin keys first, then viewer keys.
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Response {
    let refuse = |problem| {
        html(
            StatusCode::UNAUTHORIZED,
            SignInPage {
                frame: Frame::signed_out(),
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
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Ends the session: only with the session's own CSRF token.
pub async fn sign_out(
    session: Session,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let token = form.map(|Form(f)| f.csrf).unwrap_or_default();
    if let Err(forged) = session.check_csrf(&token) {
        return forged.into_response();
    }
    let mut response = to_sign_in();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie("", 0, !local(&headers)));
    response
}

//! The audit trail, newest first, with its verification: of the records shown (each hash
//! recomputed and linked to the one before), and on request of the whole chain (what
//! `sluice audit verify` checks), which reads every record.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use sluice_shared::audit::AuditError;

use super::session::Session;
use super::{Frame, Page, html, serde_name, unavailable, when};
use crate::host::state::AppState;

/// How many records the page shows.
const SHOWN: usize = 200;

struct RecordRow {
    seq: u64,
    time: String,
    action: String,
    actor: String,
    subject: String,
    link: Option<String>,
    reason: String,
    hash: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    frame: Frame,
    /// The verification: `Ok(records checked)` or where the chain breaks.
    verified: Result<u64, String>,
    /// Whether the whole chain was checked (else the records shown).
    whole: bool,
    shown: usize,
    records: Vec<RecordRow>,
}

#[derive(serde::Deserialize)]
pub struct AuditQuery {
    /// `all` checks the whole chain.
    verify: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<AuditQuery>,
) -> Page {
    let audit = state.runs.audit();
    let broken = |e: AuditError| match e {
        AuditError::Storage(e) => Err(unavailable(&session, e)),
        broken => Ok(Err(broken.to_string())),
    };
    let (records, window) = audit
        .recent_verified(SHOWN)
        .await
        .map_err(|e| unavailable(&session, e))?;
    let whole = q.verify.as_deref() == Some("all");
    let verified = if whole {
        match audit.verify().await {
            Ok(v) => Ok(v.records),
            Err(e) => broken(e)?,
        }
    } else {
        match window {
            Ok(()) => Ok(records.len() as u64),
            Err(e) => broken(e)?,
        }
    };
    Ok(html(
        StatusCode::OK,
        AuditPage {
            frame: Frame::of(&session),
            verified,
            whole,
            shown: SHOWN,
            records: records
                .into_iter()
                .map(|r| RecordRow {
                    seq: r.seq,
                    time: when(&r.at),
                    action: serde_name(r.entry.action),
                    actor: r.entry.actor,
                    link: super::link(&r.entry.subject),
                    subject: r.entry.subject,
                    reason: r.entry.reason,
                    hash: r.hash.chars().take(12).collect(),
                })
                .collect(),
        },
    ))
}

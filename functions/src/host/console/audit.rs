//! The audit trail, newest first, with the chain's verification (what `sluice audit
//! verify` checks).

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;

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
    /// The chain's verification: `Ok(records)` or where it breaks.
    verified: Result<u64, String>,
    shown: usize,
    records: Vec<RecordRow>,
}

pub async fn page(State(state): State<AppState>, session: Session) -> Page {
    let audit = state.runs.audit();
    let verified = match audit.verify().await {
        Ok(v) => Ok(v.records),
        Err(sluice_shared::audit::AuditError::Storage(e)) => return Err(unavailable(&session, e)),
        Err(broken) => Err(broken.to_string()),
    };
    let records = audit
        .recent(SHOWN)
        .await
        .map_err(|e| unavailable(&session, e))?;
    Ok(html(
        StatusCode::OK,
        AuditPage {
            frame: Frame::of(&session),
            verified,
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

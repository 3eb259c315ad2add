//! The overview: every model with its production and staging release, its last
//! release and its health, and the latest events.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use sluice_shared::registry::Release;

use super::session::Session;
use super::{Frame, Page, html, unavailable, when};
use crate::host::state::AppState;

/// One row of the models table.
struct ModelRow {
    name: String,
    task: String,
    versions: usize,
    production: String,
    staging: String,
    last_release: String,
    /// The guard's word on production, as the last monitor pass left it.
    health: String,
    degraded: bool,
}

/// One of the latest events.
pub struct EventRow {
    pub time: String,
    pub kind: String,
    pub subject: String,
    pub link: Option<String>,
    pub actor: String,
    pub reason: String,
}

impl EventRow {
    /// A record as the notifications tell it.
    pub fn of(r: &sluice_shared::audit::Record) -> Self {
        let e = sluice_shared::notify::Event::of(r);
        EventRow {
            time: when(&e.time),
            kind: e.kind,
            link: super::link(&e.subject),
            subject: e.subject,
            actor: r.entry.actor.clone(),
            reason: r.entry.reason.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage {
    frame: Frame,
    models: Vec<ModelRow>,
    events: Vec<EventRow>,
}

fn release(r: &Option<Release>) -> String {
    r.as_ref()
        .map_or("—".to_owned(), |r| format!("v{} ({})", r.version, r.id))
}

/// The guard's status in words (what `GET …/monitoring` says as `live.guard`).
fn health(live: Option<&sluice_shared::monitoring::live::Live>) -> (String, bool) {
    let Some(guard) = live.and_then(|l| l.guard.as_ref()) else {
        return ("no guard".into(), false);
    };
    let value = guard.value.map_or("—".to_owned(), |v| format!("{v:.3}"));
    if guard.breached {
        (format!("degraded: {value}, bound {}", guard.bound), true)
    } else if guard.labelled < guard.min_labelled {
        (
            format!(
                "{} of {} labels to judge",
                guard.labelled, guard.min_labelled
            ),
            false,
        )
    } else {
        (format!("healthy: {value}, bound {}", guard.bound), false)
    }
}

pub async fn page(State(state): State<AppState>, session: Session) -> Page {
    let models = sluice_shared::catalog::models(state.runs.registry())
        .await
        .map_err(|e| unavailable(&session, e))?;
    let events = state
        .runs
        .audit()
        .recent(20)
        .await
        .map_err(|e| unavailable(&session, e))?;
    let mut rows = Vec::new();
    for m in &models {
        let live = state
            .monitor
            .live(&m.model)
            .await
            .map_err(|e| unavailable(&session, e))?;
        let (health, degraded) = health(live.as_ref());
        let last = [&m.production, &m.staging]
            .into_iter()
            .flatten()
            .max_by_key(|r| r.at)
            .map_or("—".to_owned(), |r| format!("{} at {}", r.id, when(&r.at)));
        rows.push(ModelRow {
            name: m.model.to_string(),
            task: m.task.map_or("—", |t| t.as_str()).to_owned(),
            versions: m.versions.len(),
            production: release(&m.production),
            staging: release(&m.staging),
            last_release: last,
            health,
            degraded,
        });
    }
    Ok(html(
        StatusCode::OK,
        OverviewPage {
            frame: Frame::of(&session),
            models: rows,
            events: events.iter().map(EventRow::of).collect(),
        },
    ))
}

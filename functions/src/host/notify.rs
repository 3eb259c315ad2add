//! `Notify`: tells the audit trail's new records as lifecycle events — on the
//! `sluice-events` topic (its `events` output) and to each registered webhook — through
//! `shared`'s notifier. This file only decodes the timer and encodes the outputs.

use axum::extract::State;
use serde_json::{Value, json};
use tracing::Instrument;

use crate::host::error::AppError;
use crate::host::invocation::InvocationResponse;
use crate::host::state::AppState;
use crate::host::trigger::Trigger;

/// `Notify`'s Service Bus output binding (the `sluice-events` topic).
pub const EVENTS_BINDING: &str = "events";

/// The schedule slot a timer invocation is for (`ScheduleStatus`'s last and next
/// occurrences): the same for a retry of the same occurrence, so the retry is handed
/// the events the failed one could not send.
fn slot(timer: &Value) -> Option<String> {
    let status = timer.get("ScheduleStatus")?;
    let last = status.get("Last")?.as_str()?;
    let next = status.get("Next")?.as_str()?;
    Some(format!("{last}/{next}"))
}

/// `Notify`: one drain of the audit trail.
pub async fn notify_timer(
    State(state): State<AppState>,
    Trigger { inv, span }: Trigger,
) -> Result<axum::Json<InvocationResponse>, AppError> {
    async move {
        let slot = inv.data_json("timer").ok().as_ref().and_then(slot);
        let events = state.notifier.drain_topic(slot.as_deref()).await?;
        let webhooks = state.notifier.deliver(chrono::Utc::now()).await?;
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        let mut response =
            InvocationResponse::default().returning(json!({"events": kinds, "webhooks": webhooks}));
        if !events.is_empty() {
            response = response
                .log(format!("{} event(s) to sluice-events", events.len()))
                .output(EVENTS_BINDING, &events);
        }
        Ok(axum::Json(response))
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_of_the_same_occurrence_has_the_same_slot() {
        let timer = json!({"Schedule": {"AdjustForDST": true}, "IsPastDue": false,
            "ScheduleStatus": {"Last": "2026-12-03T09:00:00+00:00", "Next": "2026-12-03T09:01:00+00:00",
                               "LastUpdated": "2026-12-03T09:00:00.0212+00:00"}});
        assert_eq!(
            slot(&timer).as_deref(),
            Some("2026-12-03T09:00:00+00:00/2026-12-03T09:01:00+00:00")
        );
        // The host's fixture: a timer without a monitor has no status, and no slot.
        let fixture: Value = serde_json::from_slice(
            &std::fs::read(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../shared/fixtures/functions-host/timerTrigger.json"
            ))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(slot(&fixture["Data"]["inMsg"]), None);
    }
}

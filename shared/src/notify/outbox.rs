//! Draining the audit trail: to the `sluice-events` topic, and to each webhook.
//!
//! ```text
//! notifications/topic.json                              the topic's cursor
//! notifications/webhooks/<name>/cursor.json             a webhook's cursor
//! notifications/webhooks/<name>/deliveries/<seq>.json   what became of each event
//! ```
//!
//! **Topic.** A drain claims the records past the cursor by moving it (If-Match), then
//! hands their events to the caller, which returns them on the Service Bus output
//! binding. Of two drains at once one claims, the other gets nothing. The claim names
//! the timer's schedule slot, and a retry of the same slot (the host retries a timer
//! whose outputs could not be sent) is handed the same events again, so a failed hand-
//! over is sent on retry rather than lost; consumers deduplicate on the event id.
//!
//! **Webhooks.** Each webhook has its own cursor, so a slow or failing receiver holds
//! up only itself, and its events reach it in order. A drain leases the cursor, POSTs
//! the next event, and records the outcome: delivered (2xx); refused (a 4xx other than
//! 408 and 429: not retried); or failed, then retried with exponential backoff (10 s,
//! 20 s … up to an hour) until [`MAX_ATTEMPTS`], after which it is recorded as failed
//! and the next event goes. A new webhook starts at the end of the trail, not its
//! beginning.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::Event;
use super::webhook::{self, Attempt, Webhook};
use crate::audit::{AuditError, AuditLog};
use crate::storage::{
    ObjectKey, ObjectStore, PutMode, StorageError, create_or_keep, get_json, put_json,
};

/// The most records one drain hands to the topic.
pub const TOPIC_BATCH: usize = 500;
/// The most events one drain delivers to one webhook.
pub const WEBHOOK_BATCH: usize = 100;
/// Attempts at one event before it is recorded as failed and the next one goes.
pub const MAX_ATTEMPTS: u32 = 8;
/// How long a drain holds a webhook's cursor while it delivers.
const LEASE: Duration = Duration::seconds(120);

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl NotifyError {
    pub fn is_transient(&self) -> bool {
        match self {
            NotifyError::Storage(e) | NotifyError::Audit(AuditError::Storage(e)) => {
                e.is_transient()
            }
            NotifyError::Audit(_) => false,
        }
    }
}

/// The topic's cursor.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct TopicCursor {
    /// The first record not yet handed over.
    next_seq: u64,
    /// The last hand-over: the schedule slot it was for, and the records `[from, to)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    claim: Option<Claim>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Claim {
    slot: String,
    from: u64,
    to: u64,
}

/// A webhook's cursor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebhookCursor {
    /// The next record to consider.
    pub next_seq: u64,
    /// Failed attempts at that record so far.
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_attempt_at: Option<DateTime<Utc>>,
    /// Not before then (after a failed attempt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// A drain is delivering until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leased_until: Option<DateTime<Utc>>,
}

/// What became of one event at one webhook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub webhook: String,
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub subject: String,
    pub sluiceauditseq: u64,
    pub outcome: Outcome,
    /// The receiver's last HTTP status, if it answered.
    pub status: Option<u16>,
    pub attempts: u32,
    pub first_attempt_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Delivered,
    /// The receiver answered 4xx: not retried.
    Refused,
    /// Every attempt failed.
    Failed,
}

/// What one webhook drain did: the deliveries it finished, and whether an event is
/// waiting to be tried again.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WebhookPass {
    pub webhook: String,
    pub deliveries: Vec<Delivery>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

fn topic_key() -> ObjectKey {
    ObjectKey::parse("notifications/topic.json").expect("valid key")
}

fn cursor_key(webhook: &str) -> ObjectKey {
    ObjectKey::parse(format!("notifications/webhooks/{webhook}/cursor.json"))
        .expect("webhook names are valid key segments")
}

fn delivery_key(webhook: &str, seq: u64) -> ObjectKey {
    ObjectKey::parse(format!(
        "notifications/webhooks/{webhook}/deliveries/{seq:012}.json"
    ))
    .expect("webhook names are valid key segments")
}

/// The wait after the `attempts`-th failed attempt: 10 s, doubling, at most an hour.
fn backoff(attempts: u32) -> Duration {
    let seconds = 10i64.saturating_mul(1 << attempts.saturating_sub(1).min(20));
    Duration::seconds(seconds.min(3600))
}

/// Tells the audit trail's records as events.
#[derive(Clone)]
pub struct Notifier {
    store: Arc<dyn ObjectStore>,
    audit: AuditLog,
    webhooks: Vec<Webhook>,
    client: reqwest::Client,
}

impl Notifier {
    pub fn new(store: Arc<dyn ObjectStore>, webhooks: Vec<Webhook>) -> Self {
        Self {
            audit: AuditLog::new(store.clone()),
            store,
            webhooks,
            client: reqwest::Client::new(),
        }
    }

    pub fn webhooks(&self) -> &[Webhook] {
        &self.webhooks
    }

    /// Puts a cursor where there is none yet, at the end of the trail: a deployment (or
    /// a webhook) that starts telling events starts with what happens from then on, not
    /// with the whole history. Called when the server starts.
    pub async fn start(&self) -> Result<(), NotifyError> {
        let next_seq = self.audit.last_seq().await? + 1;
        let topic = TopicCursor {
            next_seq,
            claim: None,
        };
        create_or_keep(self.store.as_ref(), &topic_key(), &topic).await?;
        for hook in &self.webhooks {
            create_or_keep(
                self.store.as_ref(),
                &cursor_key(&hook.name),
                &fresh_cursor(next_seq),
            )
            .await?;
        }
        Ok(())
    }

    /// Claims the records past the topic's cursor and returns their events, oldest first.
    /// `slot` names the timer's schedule slot: called again for the same slot, it
    /// returns what it claimed then.
    pub async fn drain_topic(&self, slot: Option<&str>) -> Result<Vec<Event>, NotifyError> {
        let store = self.store.as_ref();
        loop {
            let (cursor, mode) = match get_json::<TopicCursor>(store, &topic_key()).await {
                Ok((c, etag)) => (c, PutMode::Update(etag)),
                // No start(): from the beginning, so nothing recorded is skipped.
                Err(StorageError::NotFound { .. }) => (
                    TopicCursor {
                        next_seq: 1,
                        claim: None,
                    },
                    PutMode::Create,
                ),
                Err(e) => return Err(e.into()),
            };
            if let (Some(slot), Some(claim)) = (slot, &cursor.claim)
                && claim.slot == slot
            {
                return self.events(claim.from, claim.to).await;
            }
            let mut to = cursor.next_seq;
            let mut records = Vec::new();
            while records.len() < TOPIC_BATCH
                && let Some(record) = self.audit.record(to).await?
            {
                records.push(record);
                to += 1;
            }
            if records.is_empty() {
                return Ok(vec![]);
            }
            let claimed = TopicCursor {
                next_seq: to,
                claim: slot.map(|slot| Claim {
                    slot: slot.to_owned(),
                    from: cursor.next_seq,
                    to,
                }),
            };
            match put_json(store, &topic_key(), &claimed, mode).await {
                Ok(_) => return Ok(records.iter().map(Event::of).collect()),
                // Another drain moved it first: what it claimed is its to hand over.
                Err(StorageError::Precondition { .. } | StorageError::AlreadyExists { .. }) => {
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn events(&self, from: u64, to: u64) -> Result<Vec<Event>, NotifyError> {
        let mut events = Vec::new();
        for seq in from..to {
            if let Some(record) = self.audit.record(seq).await? {
                events.push(Event::of(&record));
            }
        }
        Ok(events)
    }

    /// Delivers what each webhook has waiting (see the module docs).
    pub async fn deliver(&self, now: DateTime<Utc>) -> Result<Vec<WebhookPass>, NotifyError> {
        let mut passes = Vec::new();
        for hook in &self.webhooks {
            passes.push(self.deliver_to(hook, now).await?);
        }
        Ok(passes)
    }

    /// `webhook`'s deliveries, newest first.
    pub async fn deliveries(&self, webhook: &str) -> Result<Vec<Delivery>, NotifyError> {
        let prefix = format!("notifications/webhooks/{webhook}/deliveries/");
        let mut out = Vec::new();
        for meta in self.store.list(&prefix).await? {
            out.push(
                get_json::<Delivery>(self.store.as_ref(), &meta.key)
                    .await?
                    .0,
            );
        }
        out.sort_by_key(|d| std::cmp::Reverse(d.sluiceauditseq));
        Ok(out)
    }

    async fn deliver_to(
        &self,
        hook: &Webhook,
        now: DateTime<Utc>,
    ) -> Result<WebhookPass, NotifyError> {
        let store = self.store.as_ref();
        let key = cursor_key(&hook.name);
        let mut pass = WebhookPass {
            webhook: hook.name.clone(),
            ..WebhookPass::default()
        };
        let (mut cursor, etag) = match get_json::<WebhookCursor>(store, &key).await {
            Ok(found) => found,
            Err(StorageError::NotFound { .. }) => {
                // Registered after the server started: from now on.
                let fresh = fresh_cursor(self.audit.last_seq().await? + 1);
                create_or_keep(store, &key, &fresh).await?;
                get_json(store, &key).await?
            }
            Err(e) => return Err(e.into()),
        };
        let busy = cursor.leased_until.is_some_and(|until| until > now);
        let waiting = cursor.retry_at.is_some_and(|at| at > now);
        if busy || waiting {
            pass.retry_at = cursor.retry_at;
            pass.last_error = cursor.last_error.clone();
            return Ok(pass);
        }
        cursor.leased_until = Some(now + LEASE);
        let mut etag = match put_json(store, &key, &cursor, PutMode::Update(etag)).await {
            Ok(meta) => meta.etag,
            // Another drain took the lease.
            Err(StorageError::Precondition { .. }) => return Ok(pass),
            Err(e) => return Err(e.into()),
        };
        let mut handled = 0;
        while handled < WEBHOOK_BATCH {
            let Some(record) = self.audit.record(cursor.next_seq).await? else {
                break;
            };
            let event = Event::of(&record);
            if !hook.wants(&event) {
                cursor.next_seq += 1;
                continue;
            }
            handled += 1;
            let attempt_at = Utc::now();
            let attempts = cursor.attempts + 1;
            let first = *cursor.first_attempt_at.get_or_insert(attempt_at);
            let attempt = webhook::post(&self.client, hook, &event, attempt_at.timestamp()).await;
            let finished = |outcome, status, error| Delivery {
                webhook: hook.name.clone(),
                event_id: event.id.clone(),
                kind: event.kind.clone(),
                subject: event.subject.clone(),
                sluiceauditseq: record.seq,
                outcome,
                status,
                attempts,
                first_attempt_at: first,
                finished_at: attempt_at,
                error,
            };
            let done = match attempt {
                Attempt::Delivered(status) => {
                    Some(finished(Outcome::Delivered, Some(status), None))
                }
                Attempt::Refused(status) => Some(finished(
                    Outcome::Refused,
                    Some(status),
                    Some(format!("the receiver refused it ({status})")),
                )),
                Attempt::Failed { status, error } if attempts >= MAX_ATTEMPTS => {
                    Some(finished(Outcome::Failed, status, Some(error)))
                }
                Attempt::Failed { error, .. } => {
                    tracing::warn!(webhook = %hook.name, event = %event.id, attempts, %error, "webhook delivery failed; will retry");
                    cursor.attempts = attempts;
                    cursor.retry_at = Some(attempt_at + backoff(attempts));
                    cursor.last_error = Some(error);
                    None
                }
            };
            let Some(delivery) = done else {
                break;
            };
            put_json(
                store,
                &delivery_key(&hook.name, record.seq),
                &delivery,
                PutMode::Overwrite,
            )
            .await?;
            if delivery.outcome != Outcome::Delivered {
                tracing::warn!(webhook = %hook.name, event = %event.id, outcome = ?delivery.outcome, "webhook delivery given up");
            }
            pass.deliveries.push(delivery);
            cursor = WebhookCursor {
                leased_until: cursor.leased_until,
                ..fresh_cursor(record.seq + 1)
            };
            etag = match put_json(store, &key, &cursor, PutMode::Update(etag)).await {
                Ok(meta) => meta.etag,
                Err(StorageError::Precondition { .. }) => return Ok(pass),
                Err(e) => return Err(e.into()),
            };
        }
        cursor.leased_until = None;
        pass.retry_at = cursor.retry_at;
        pass.last_error = cursor.last_error.clone();
        match put_json(store, &key, &cursor, PutMode::Update(etag)).await {
            Ok(_) | Err(StorageError::Precondition { .. }) => Ok(pass),
            Err(e) => Err(e.into()),
        }
    }
}

fn fresh_cursor(next_seq: u64) -> WebhookCursor {
    WebhookCursor {
        next_seq,
        attempts: 0,
        first_attempt_at: None,
        retry_at: None,
        last_error: None,
        leased_until: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cursors written by earlier versions must keep reading: the paths are pinned.
    #[test]
    fn the_notifications_layout_is_pinned() {
        assert_eq!(topic_key().as_str(), "notifications/topic.json");
        assert_eq!(
            cursor_key("ops").as_str(),
            "notifications/webhooks/ops/cursor.json"
        );
        assert_eq!(
            delivery_key("ops", 42).as_str(),
            "notifications/webhooks/ops/deliveries/000000000042.json"
        );
    }

    #[test]
    fn retries_back_off_to_an_hour() {
        let waits: Vec<i64> = (1..=11).map(|n| backoff(n).num_seconds()).collect();
        assert_eq!(
            waits,
            [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
        );
    }
}

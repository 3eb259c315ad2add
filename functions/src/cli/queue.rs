//! The embedded durable queue: the local stand-in for Service Bus and Event Grid delivery.
//!
//! Each queue is a directory with `ready/`, `leased/`, `done/` and `dead/` folders; a
//! message is one JSON file moved between them with `rename`, which is atomic, so a
//! message is leased by exactly one receiver. Delivery is at-least-once: leases left
//! behind by a crash go back to `ready/` on [`EmbeddedQueue::recover`]. A failed message
//! is retried with backoff up to `max_deliveries` times (Service Bus' MaxDeliveryCount),
//! then moved to `dead/` with its reason; a message that can never succeed goes to
//! `dead/` at once. Nothing is ever deleted; `done/` keeps the history.
//! Enqueueing is idempotent by message id (the file name), like Service Bus duplicate
//! detection.

use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

const STATES: [&str; 4] = ["ready", "leased", "done", "dead"];

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    pub body: Value,
    pub delivery_count: u32,
    pub enqueued_at: DateTime<Utc>,
    pub not_before: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A leased message; settle it with `complete`, `abandon` or `dead_letter`.
#[derive(Debug)]
pub struct Delivery {
    pub message: Message,
    file: String,
    queue: PathBuf,
}

#[derive(Debug, Clone)]
pub struct EmbeddedQueue {
    dir: PathBuf,
    max_deliveries: u32,
}

impl EmbeddedQueue {
    /// Opens (creating) the queue stored in `dir`.
    pub fn open(dir: impl AsRef<Path>, max_deliveries: u32) -> std::io::Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        for state in STATES {
            fs::create_dir_all(dir.join(state))?;
        }
        Ok(Self {
            dir,
            max_deliveries,
        })
    }

    fn file_name(id: &str) -> String {
        format!("{}.json", &hex::encode(Sha256::digest(id.as_bytes()))[..32])
    }

    fn write(&self, state: &str, file: &str, message: &Message) -> std::io::Result<()> {
        let tmp = self.dir.join(format!(".tmp-{}", uuid::Uuid::new_v4()));
        fs::write(
            &tmp,
            serde_json::to_vec_pretty(message).expect("messages serialise"),
        )?;
        fs::rename(tmp, self.dir.join(state).join(file))
    }

    /// Adds a message unless one with the same id was ever enqueued. Returns whether it was added.
    pub fn enqueue(&self, id: &str, body: Value) -> std::io::Result<bool> {
        let file = Self::file_name(id);
        if STATES.iter().any(|s| self.dir.join(s).join(&file).exists()) {
            return Ok(false);
        }
        let now = Utc::now();
        let message = Message {
            id: id.to_owned(),
            body,
            delivery_count: 0,
            enqueued_at: now,
            not_before: now,
            last_error: None,
        };
        self.write("ready", &file, &message)?;
        Ok(true)
    }

    /// Leases the oldest ready message whose backoff has passed.
    pub fn receive(&self) -> std::io::Result<Option<Delivery>> {
        let now = Utc::now();
        let mut candidates: Vec<(DateTime<Utc>, String, Message)> = Vec::new();
        for entry in fs::read_dir(self.dir.join("ready"))? {
            let entry = entry?;
            let file = entry.file_name().to_string_lossy().into_owned();
            let Ok(bytes) = fs::read(entry.path()) else {
                continue;
            };
            let Ok(message) = serde_json::from_slice::<Message>(&bytes) else {
                continue;
            };
            if message.not_before <= now {
                candidates.push((message.enqueued_at, file, message));
            }
        }
        candidates.sort_by_key(|c| c.0);
        for (_, file, mut message) in candidates {
            // The rename is the lease: only one receiver can win it.
            if fs::rename(
                self.dir.join("ready").join(&file),
                self.dir.join("leased").join(&file),
            )
            .is_ok()
            {
                message.delivery_count += 1;
                self.write("leased", &file, &message)?;
                return Ok(Some(Delivery {
                    message,
                    file,
                    queue: self.dir.clone(),
                }));
            }
        }
        Ok(None)
    }

    pub fn complete(&self, d: Delivery) -> std::io::Result<()> {
        self.settle(d, "done")
    }

    /// Gives the message back for a later retry, or dead-letters it once it has been
    /// delivered `max_deliveries` times.
    pub fn abandon(&self, mut d: Delivery, reason: &str) -> std::io::Result<()> {
        d.message.last_error = Some(reason.to_owned());
        if d.message.delivery_count >= self.max_deliveries {
            d.message.last_error = Some(format!(
                "max deliveries ({}) reached; last error: {reason}",
                self.max_deliveries
            ));
            return self.settle(d, "dead");
        }
        let backoff =
            chrono::Duration::milliseconds(200 * 2i64.pow(d.message.delivery_count.min(10)));
        d.message.not_before = Utc::now() + backoff;
        self.settle(d, "ready")
    }

    /// Sets aside a message that can never succeed, with its reason.
    pub fn dead_letter(&self, mut d: Delivery, reason: &str) -> std::io::Result<()> {
        d.message.last_error = Some(reason.to_owned());
        self.settle(d, "dead")
    }

    fn settle(&self, d: Delivery, state: &str) -> std::io::Result<()> {
        debug_assert_eq!(d.queue, self.dir);
        self.write(state, &d.file, &d.message)?;
        fs::remove_file(self.dir.join("leased").join(&d.file))
    }

    /// Returns leases a crashed process left behind to `ready/` (at-least-once).
    pub fn recover(&self) -> std::io::Result<usize> {
        let mut n = 0;
        for entry in fs::read_dir(self.dir.join("leased"))? {
            let entry = entry?;
            fs::rename(entry.path(), self.dir.join("ready").join(entry.file_name()))?;
            n += 1;
        }
        Ok(n)
    }

    /// Messages in a state (`ready`, `leased`, `done`, `dead`).
    pub fn messages(&self, state: &str) -> std::io::Result<Vec<Message>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(self.dir.join(state))? {
            let bytes = fs::read(entry?.path())?;
            if let Ok(m) = serde_json::from_slice(&bytes) {
                out.push(m);
            }
        }
        out.sort_by_key(|m: &Message| m.enqueued_at);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_are_deduplicated_retried_and_dead_lettered() {
        let dir = tempfile::tempdir().unwrap();
        let q = EmbeddedQueue::open(dir.path(), 2).unwrap();
        assert!(q.enqueue("a", json!({"n": 1})).unwrap());
        assert!(
            !q.enqueue("a", json!({"n": 1})).unwrap(),
            "same id is not enqueued twice"
        );
        let d = q.receive().unwrap().unwrap();
        assert_eq!((d.message.id.as_str(), d.message.delivery_count), ("a", 1));
        assert!(
            q.receive().unwrap().is_none(),
            "a leased message is invisible"
        );
        q.abandon(d, "transient").unwrap();
        assert!(q.receive().unwrap().is_none(), "backoff delays the retry");
        std::thread::sleep(std::time::Duration::from_millis(450));
        let d = q.receive().unwrap().unwrap();
        assert_eq!(d.message.delivery_count, 2);
        q.abandon(d, "still failing").unwrap();
        let dead = q.messages("dead").unwrap();
        assert_eq!(dead.len(), 1);
        assert!(
            dead[0]
                .last_error
                .as_deref()
                .unwrap()
                .contains("still failing")
        );
        assert!(
            !q.enqueue("a", json!({})).unwrap(),
            "dead-lettered ids stay known"
        );
    }

    #[test]
    fn a_crash_leaves_messages_to_redeliver() {
        let dir = tempfile::tempdir().unwrap();
        let q = EmbeddedQueue::open(dir.path(), 10).unwrap();
        q.enqueue("x", json!(1)).unwrap();
        let _leased = q.receive().unwrap().unwrap();
        let reopened = EmbeddedQueue::open(dir.path(), 10).unwrap();
        assert_eq!(reopened.recover().unwrap(), 1);
        let d = reopened.receive().unwrap().unwrap();
        assert_eq!(d.message.delivery_count, 2);
        reopened.complete(d).unwrap();
        assert_eq!(reopened.messages("done").unwrap().len(), 1);
        let unsettled = EmbeddedQueue::open(dir.path(), 10).unwrap();
        unsettled.enqueue("y", json!(2)).unwrap();
        let d = unsettled.receive().unwrap().unwrap();
        unsettled.dead_letter(d, "bad request").unwrap();
        assert_eq!(
            unsettled.messages("dead").unwrap()[0].last_error.as_deref(),
            Some("bad request")
        );
    }
}

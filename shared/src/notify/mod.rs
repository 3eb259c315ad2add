//! Notifications: every lifecycle event, told to other systems.
//!
//! The audit trail is the outbox. Each step that changes state already appends a
//! hash-chained record (an upload versioned or quarantined, a run started or finished,
//! a gate's verdict, a release, a drift or degradation decision…); an event is that
//! record in CloudEvents 1.0 form ([`Event::of`]), so there is one list of what
//! happened and one schema, and nothing can be told that was not recorded. The `Notify`
//! timer drains the trail past two kinds of cursor ([`outbox`]): one for the
//! `sluice-events` topic (handed to the Service Bus output binding) and one per webhook
//! (signed HTTPS POSTs, retried with backoff, each delivery recorded: [`webhook`]).
//!
//! Why drain the audit trail rather than publish at each step: a step that fails after
//! its state change is retried by its trigger, and the retry finds the change made and
//! may skip what followed it. Records that must follow their change exactly once are
//! appended with [`crate::audit::AuditLog::append_once`]; publishing from the trail then
//! inherits that, and an event is never told twice under two ids.

pub mod outbox;
pub mod webhook;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::audit::{Action, Record};

pub use outbox::Notifier;
pub use webhook::Webhook;

/// Where Sluice's events say they come from.
pub const SOURCE: &str = "/sluice";

/// A lifecycle event: CloudEvents 1.0, structured mode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub specversion: String,
    /// Unique per event and stable across redeliveries: consumers deduplicate on it.
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// What it is about, as a path: `models/adult-income/versions/3`, `runs/<id>`.
    pub subject: String,
    pub time: DateTime<Utc>,
    pub datacontenttype: String,
    /// The audit record it tells (a CloudEvents extension attribute): the order of
    /// events, and where to read the record itself.
    pub sluiceauditseq: u64,
    /// The record's details, with who (`actor`), why (`reason`), the flow it belongs to
    /// (`correlation_id`) and the subject's parts (`model`, `model_version`, `dataset`,
    /// `version`, `run_id`).
    pub data: Value,
}

impl Event {
    /// The event an audit record tells.
    pub fn of(record: &Record) -> Event {
        let entry = &record.entry;
        let kind = event_type(record);
        let mut data = match &entry.details {
            Value::Object(details) => details.clone(),
            Value::Null => Map::new(),
            other => Map::from_iter([("details".to_owned(), other.clone())]),
        };
        let id = match data.remove("event_id") {
            Some(Value::String(id)) => id,
            _ => format!("{kind}:{}", &record.hash[..record.hash.len().min(20)]),
        };
        for (name, value) in subject_parts(&entry.subject) {
            data.entry(name).or_insert(value);
        }
        data.insert("actor".into(), entry.actor.clone().into());
        data.insert("reason".into(), entry.reason.clone().into());
        data.insert("correlation_id".into(), entry.correlation_id.clone().into());
        Event {
            specversion: "1.0".into(),
            id,
            source: SOURCE.into(),
            kind,
            subject: subject_path(&entry.subject),
            time: record.at,
            datacontenttype: "application/json".into(),
            sluiceauditseq: record.seq,
            data: Value::Object(data),
        }
    }
}

/// The event type of a record: one per action, and per outcome for a finished run.
fn event_type(record: &Record) -> String {
    let kind = match record.entry.action {
        Action::DatasetVersioned => "dataset.versioned",
        Action::DatasetRejected => "dataset.quarantined",
        Action::ContractStored => "contract.stored",
        Action::ConfigStored => "config.stored",
        Action::RunRequested => "run.requested",
        Action::RunRejected => "run.rejected",
        Action::RunStarted => "run.started",
        Action::RunRetried => "run.retried",
        Action::RunFinished => {
            // The status is in the details; records written before they carried it
            // start their reason with it.
            let status = record.entry.details["status"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| {
                    let reason = &record.entry.reason;
                    reason.split(':').next().unwrap_or(reason).trim().to_owned()
                });
            return format!("run.{status}");
        }
        Action::ModelRegistered => "model.registered",
        Action::GatePassed => "model.gate_passed",
        Action::GateFailed => "model.gate_failed",
        Action::AwaitingApproval => "model.awaiting_approval",
        Action::Promoted => "model.promoted",
        Action::Approved => "model.approved",
        Action::RolledBack => "model.rolled_back",
        Action::DriftDetected => "model.drift_detected",
        Action::Degraded => "model.degraded",
        Action::FeedbackReceived => "feedback.received",
        Action::FeedbackRejected => "feedback.quarantined",
    };
    kind.to_owned()
}

/// An audit subject (`model:adult-income@3`) as a path (`models/adult-income/versions/3`).
pub fn subject_path(subject: &str) -> String {
    let Some((kind, rest)) = subject.split_once(':') else {
        return subject.to_owned();
    };
    let (name, at) = match rest.split_once('@') {
        Some((name, at)) => (name, Some(at)),
        None => (rest, None),
    };
    match (kind, at) {
        ("model", Some(v)) => format!("models/{name}/versions/{v}"),
        ("model", None) => format!("models/{name}"),
        ("dataset", Some(v)) => format!("datasets/{name}/versions/{v}"),
        ("dataset", None) => format!("datasets/{name}"),
        ("config", Some(v)) => format!("models/{name}/configs/{v}"),
        ("run", _) => format!("runs/{rest}"),
        _ => subject.to_owned(),
    }
}

/// The subject's parts as data fields.
fn subject_parts(subject: &str) -> Vec<(String, Value)> {
    let Some((kind, rest)) = subject.split_once(':') else {
        return vec![];
    };
    let (name, at) = match rest.split_once('@') {
        Some((name, at)) => (name, at.parse::<u64>().ok()),
        None => (rest, None),
    };
    let number = |field: &str| at.map(|v| (field.to_owned(), Value::from(v)));
    match kind {
        "model" => [
            Some(("model".to_owned(), name.into())),
            number("model_version"),
        ]
        .into_iter()
        .flatten()
        .collect(),
        "dataset" => [Some(("dataset".to_owned(), name.into())), number("version")]
            .into_iter()
            .flatten()
            .collect(),
        "config" => vec![("model".to_owned(), name.into())],
        "run" => vec![("run_id".to_owned(), rest.into())],
        _ => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Entry;

    fn record(action: Action, subject: &str, details: Value) -> Record {
        Record {
            seq: 7,
            at: Utc::now(),
            entry: Entry {
                action,
                actor: "ann".into(),
                subject: subject.into(),
                reason: "failed: out of memory".into(),
                correlation_id: "c1".into(),
                details,
            },
            prev_hash: String::new(),
            hash: "ab".repeat(32),
        }
    }

    #[test]
    fn a_record_is_told_as_a_cloud_event() {
        let r = record(
            Action::DriftDetected,
            "model:adult-income@3",
            serde_json::json!({"event_id": "model.drift_detected:adult-income:production.2:4", "rows": 1500}),
        );
        let e = Event::of(&r);
        assert_eq!(e.kind, "model.drift_detected");
        assert_eq!(e.id, "model.drift_detected:adult-income:production.2:4");
        assert_eq!(e.subject, "models/adult-income/versions/3");
        assert_eq!(e.sluiceauditseq, 7);
        assert_eq!(e.data["model"], "adult-income");
        assert_eq!(e.data["model_version"], 3);
        assert_eq!(e.data["rows"], 1500);
        assert_eq!(e.data["actor"], "ann");
        assert!(e.data.get("event_id").is_none());
        let json = serde_json::to_value(&e).unwrap();
        for attribute in [
            "specversion",
            "id",
            "source",
            "type",
            "subject",
            "time",
            "datacontenttype",
            "data",
        ] {
            assert!(json.get(attribute).is_some(), "{attribute}");
        }
    }

    #[test]
    fn a_finished_run_is_told_by_its_outcome_even_from_older_records() {
        let new = record(
            Action::RunFinished,
            "run:r1",
            serde_json::json!({"status": "succeeded"}),
        );
        assert_eq!(Event::of(&new).kind, "run.succeeded");
        let old = record(
            Action::RunFinished,
            "run:r1",
            serde_json::json!({"model_version": null}),
        );
        assert_eq!(Event::of(&old).kind, "run.failed");
        assert_eq!(Event::of(&old).subject, "runs/r1");
        assert_eq!(Event::of(&old).data["run_id"], "r1");
        let id = Event::of(&old).id;
        assert!(id.starts_with("run.failed:abab"), "{id}");
    }

    #[test]
    fn subjects_become_paths() {
        for (subject, path) in [
            ("dataset:adult@3", "datasets/adult/versions/3"),
            ("dataset:adult", "datasets/adult"),
            ("model:m", "models/m"),
            ("config:m@2", "models/m/configs/2"),
            ("rejected/x.json", "rejected/x.json"),
        ] {
            assert_eq!(subject_path(subject), path);
        }
    }
}

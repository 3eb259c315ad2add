//! Webhooks: lifecycle events POSTed to receivers that registered for them, signed so
//! a receiver can tell Sluice sent them and when.
//!
//! The signature follows the Standard Webhooks specification (what Svix, Supabase and
//! others send), so receivers can use its libraries: headers `webhook-id` (the event's
//! id), `webhook-timestamp` (Unix seconds) and `webhook-signature` (`v1,` and the
//! base64 HMAC-SHA256 of `<id>.<timestamp>.<body>`). A `whsec_…` secret is base64 after
//! its prefix, as the specification has it; any other secret is used as its bytes.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Event;
use crate::registry::ModelName;

/// How long a receiver has to answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A webhook's secret; never printed.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    fn key(&self) -> Vec<u8> {
        match self.0.strip_prefix("whsec_") {
            Some(encoded) => STANDARD
                .decode(encoded)
                .unwrap_or_else(|_| self.0.as_bytes().to_vec()),
            None => self.0.as_bytes().to_vec(),
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// A registered receiver (app settings `SLUICE_WEBHOOK__<NAME>__URL`, `__SECRET`, and
/// optionally `__MODELS` and `__EVENTS`).
#[derive(Clone, Debug)]
pub struct Webhook {
    /// Names its cursor and delivery records: `notifications/webhooks/<name>/`.
    pub name: String,
    pub url: url::Url,
    pub secret: Secret,
    /// Only events about these models (and none about anything else); all when empty.
    pub models: Vec<ModelName>,
    /// Only these event types, or prefixes ending in `.` (`model.`); all when empty.
    pub events: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook {name}: {problem}")]
    Invalid { name: String, problem: String },
}

impl Webhook {
    /// A webhook as its settings give it; HTTPS only, except to this machine (for
    /// `sluice dev`).
    pub fn new(
        name: &str,
        url: &str,
        secret: Secret,
        models: Vec<ModelName>,
        events: Vec<String>,
    ) -> Result<Self, WebhookError> {
        let invalid = |problem: String| WebhookError::Invalid {
            name: name.to_owned(),
            problem,
        };
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid_name {
            return Err(invalid(
                "the name must be 1-64 lower-case letters, digits or '-'".into(),
            ));
        }
        let url = url::Url::parse(url).map_err(|e| invalid(format!("URL: {e}")))?;
        let local = matches!(url.host(), Some(url::Host::Domain("localhost")))
            || matches!(url.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
            || matches!(url.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback());
        if url.scheme() != "https" && !(url.scheme() == "http" && local) {
            return Err(invalid(format!(
                "{url}: use https (plain http only to localhost)"
            )));
        }
        if secret.0.len() < 16 {
            return Err(invalid("the secret must be at least 16 characters".into()));
        }
        Ok(Self {
            name: name.to_owned(),
            url,
            secret,
            models: models.into_iter().collect(),
            events,
        })
    }

    /// Whether this webhook wants `event`.
    pub fn wants(&self, event: &Event) -> bool {
        let model_ok = self.models.is_empty()
            || event.data["model"]
                .as_str()
                .is_some_and(|m| self.models.iter().any(|w| w.as_str() == m));
        let type_ok = self.events.is_empty()
            || self.events.iter().any(|e| {
                if e.ends_with('.') {
                    event.kind.starts_with(e.as_str())
                } else {
                    event.kind == *e
                }
            });
        model_ok && type_ok
    }

    /// The `webhook-signature` header's value for a body sent as `id` at `timestamp`.
    pub fn signature(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret.key()).expect("HMAC takes any key");
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// How one attempt went.
#[derive(Clone, Debug, PartialEq)]
pub enum Attempt {
    /// 2xx.
    Delivered(u16),
    /// A 4xx other than 408 and 429: the receiver refuses it; trying again would not help.
    Refused(u16),
    /// 5xx, 408, 429, a time-out or no connection: worth trying again later.
    Failed { status: Option<u16>, error: String },
}

/// POSTs `event` to `hook` once, signed at `timestamp`.
pub async fn post(
    client: &reqwest::Client,
    hook: &Webhook,
    event: &Event,
    timestamp: i64,
) -> Attempt {
    let body = serde_json::to_vec(event).expect("events serialise");
    let signature = hook.signature(&event.id, timestamp, &body);
    let sent = client
        .post(hook.url.clone())
        .timeout(TIMEOUT)
        .header("content-type", "application/cloudevents+json")
        .header("webhook-id", &event.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .header("user-agent", concat!("sluice/", env!("CARGO_PKG_VERSION")))
        .body(body)
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => Attempt::Delivered(r.status().as_u16()),
        Ok(r) if r.status().is_client_error() && ![408, 429].contains(&r.status().as_u16()) => {
            Attempt::Refused(r.status().as_u16())
        }
        Ok(r) => Attempt::Failed {
            status: Some(r.status().as_u16()),
            error: format!("the receiver answered {}", r.status()),
        },
        Err(e) => Attempt::Failed {
            status: None,
            error: if e.is_timeout() {
                format!("no answer within {} s", TIMEOUT.as_secs())
            } else {
                // Without the URL: a query string may hold a receiver's token.
                e.without_url().to_string()
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(secret: &str) -> Webhook {
        Webhook::new(
            "ops",
            "https://example.com/hook",
            Secret::new(secret),
            vec![],
            vec![],
        )
        .unwrap()
    }

    /// The Standard Webhooks specification's own example: its secret, id, timestamp
    /// and body give its signature.
    #[test]
    fn the_signature_is_the_standard_webhooks_one() {
        let h = hook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            h.signature("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn only_https_or_this_machine_and_a_real_secret() {
        let secret = || Secret::new("a-secret-of-some-length");
        assert!(Webhook::new("a", "http://example.com/x", secret(), vec![], vec![]).is_err());
        assert!(Webhook::new("a", "http://127.0.0.1:9/x", secret(), vec![], vec![]).is_ok());
        assert!(Webhook::new("a", "http://localhost/x", secret(), vec![], vec![]).is_ok());
        assert!(Webhook::new("a", "https://x.io", Secret::new("short"), vec![], vec![]).is_err());
        assert!(Webhook::new("Bad Name", "https://x.io", secret(), vec![], vec![]).is_err());
        assert_eq!(format!("{:?}", secret()), "Secret(…)");
    }

    #[test]
    fn a_webhook_takes_its_models_and_types() {
        let event = |kind: &str, model: Option<&str>| Event {
            specversion: "1.0".into(),
            id: "x".into(),
            source: super::super::SOURCE.into(),
            kind: kind.into(),
            subject: "s".into(),
            time: chrono::Utc::now(),
            datacontenttype: "application/json".into(),
            sluiceauditseq: 1,
            data: model.map_or(serde_json::json!({}), |m| serde_json::json!({"model": m})),
        };
        let m = ModelName::parse("adult-income").unwrap();
        let narrow = Webhook::new(
            "a",
            "https://x.io",
            Secret::new("a-secret-of-some-length"),
            vec![m],
            vec!["model.".into(), "run.failed".into()],
        )
        .unwrap();
        assert!(narrow.wants(&event("model.drift_detected", Some("adult-income"))));
        assert!(!narrow.wants(&event("model.drift_detected", Some("iris"))));
        assert!(!narrow.wants(&event("dataset.versioned", None)));
        assert!(!narrow.wants(&event("run.succeeded", Some("adult-income"))));
        assert!(narrow.wants(&event("run.failed", Some("adult-income"))));
    }
}

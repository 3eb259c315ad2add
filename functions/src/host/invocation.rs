//! The Functions host's custom-handler wire contract.
//!
//! Requests are `{"Data":{binding:…},"Metadata":{…}}`; responses are
//! `{"Outputs":{…},"Logs":[…],"ReturnValue":…}`. The host's encodings are quirky and
//! documented in `../shared/README.md`: bytes arrive base64, string values are
//! JSON-encoded a second time, numbers in Metadata arrive as strings, and older hosts
//! send nested Metadata objects as JSON strings. Everything here parses leniently and
//! fails with the name of the field that could not be understood.

use base64::Engine;
use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{field}: {problem}")]
pub struct InvocationError {
    /// A JSON-pointer-like path to the field, e.g. `Data.event.data.url`.
    pub field: String,
    pub problem: String,
}

impl InvocationError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Invocation {
    pub data: Map<String, Value>,
    pub metadata: Map<String, Value>,
}

/// Turns a value the host may have JSON-encoded again back into what it encodes.
fn unwrap_encoded(v: &Value) -> Value {
    match v {
        Value::String(s) => {
            let t = s.trim_start();
            if t.starts_with('{') || t.starts_with('[') || t.starts_with('"') {
                serde_json::from_str(s).unwrap_or_else(|_| v.clone())
            } else {
                v.clone()
            }
        }
        _ => v.clone(),
    }
}

/// An Event Grid event's type: `eventType` in the Event Grid schema, `type` in
/// CloudEvents.
pub fn event_type(event: &Value) -> Option<&str> {
    event
        .get("eventType")
        .or_else(|| event.get("type"))
        .and_then(Value::as_str)
}

/// An Event Grid event's `data`, which every event Sluice handles needs.
pub fn event_data(event: &Value) -> Result<&Value, InvocationError> {
    event
        .get("data")
        .ok_or_else(|| InvocationError::new("Data.event.data", "missing"))
}

impl Invocation {
    pub fn parse(body: &[u8]) -> Result<Self, InvocationError> {
        let root: Value = serde_json::from_slice(body)
            .map_err(|e| InvocationError::new("body", format!("not JSON: {e}")))?;
        let Value::Object(mut root) = root else {
            return Err(InvocationError::new(
                "body",
                "must be a JSON object with Data and Metadata",
            ));
        };
        let mut object = |name: &str| -> Result<Map<String, Value>, InvocationError> {
            match root.remove(name).map(|v| unwrap_encoded(&v)) {
                None | Some(Value::Null) => Ok(Map::new()),
                Some(Value::Object(m)) => Ok(m),
                Some(_) => Err(InvocationError::new(name, "must be an object")),
            }
        };
        Ok(Self {
            data: object("Data")?,
            metadata: object("Metadata")?,
        })
    }

    fn data_value(&self, name: &str) -> Result<&Value, InvocationError> {
        self.data
            .get(name)
            .filter(|v| !v.is_null())
            .ok_or_else(|| InvocationError::new(format!("Data.{name}"), "missing"))
    }

    /// A binding value that carries JSON: an object, or a string holding JSON.
    pub fn data_json(&self, name: &str) -> Result<Value, InvocationError> {
        let v = self.data_value(name)?;
        match v {
            Value::String(s) => serde_json::from_str(s).map_err(|e| {
                InvocationError::new(format!("Data.{name}"), format!("not JSON: {e}"))
            }),
            other => Ok(other.clone()),
        }
    }

    /// The one Event Grid event an `eventGridTrigger` binding named `event` carries (a
    /// batch of one is accepted too).
    pub fn event(&self) -> Result<Value, InvocationError> {
        match self.data_json("event")? {
            Value::Array(mut events) if events.len() == 1 => Ok(events.remove(0)),
            event @ Value::Object(_) => Ok(event),
            _ => Err(InvocationError::new(
                "Data.event",
                "must be one Event Grid event object",
            )),
        }
    }

    /// A `dataType: binary` binding: base64 text.
    pub fn data_bytes(&self, name: &str) -> Result<Vec<u8>, InvocationError> {
        let field = format!("Data.{name}");
        let Value::String(s) = self.data_value(name)? else {
            return Err(InvocationError::new(field, "must be base64 text"));
        };
        base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map_err(|e| InvocationError::new(field, format!("not base64: {e}")))
    }

    /// A Metadata string, with the host's extra JSON quoting removed.
    pub fn meta_str(&self, path: &str) -> Option<String> {
        match unwrap_encoded(&self.meta(path)?) {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// A Metadata number, whether sent as a number or as a string.
    pub fn meta_u64(&self, path: &str) -> Option<u64> {
        match self.meta(path)? {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim_matches('"').parse().ok(),
            _ => None,
        }
    }

    /// Looks up `a.b.c` in Metadata, decoding nested objects sent as JSON strings.
    fn meta(&self, path: &str) -> Option<Value> {
        let mut parts = path.split('.');
        let mut current = self.metadata.get(parts.next()?)?.clone();
        for part in parts {
            current = match unwrap_encoded(&current) {
                Value::Object(mut m) => m.remove(part)?,
                _ => return None,
            };
        }
        (!current.is_null()).then_some(current)
    }

    /// The host's invocation id, for tracing: its `X-Azure-Functions-InvocationId`
    /// header, else `Metadata.sys.RandGuid`, else a fresh one.
    pub fn invocation_id(&self) -> String {
        crate::telemetry::host_invocation_id()
            .or_else(|| self.meta_str("sys.RandGuid"))
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
    }
}

/// The handler's answer to the host.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InvocationResponse {
    pub outputs: Map<String, Value>,
    pub logs: Vec<String>,
    pub return_value: Value,
}

impl InvocationResponse {
    /// Sets an output binding. Outputs must be objects: the host base64-decodes bare
    /// strings for non-binary outputs.
    pub fn output(mut self, binding: &str, value: impl Serialize) -> Self {
        let value = serde_json::to_value(value).expect("outputs serialise");
        debug_assert!(
            !value.is_string(),
            "outputs are objects, never bare strings"
        );
        self.outputs.insert(binding.to_owned(), value);
        self
    }

    pub fn log(mut self, line: impl Into<String>) -> Self {
        self.logs.push(line.into());
        self
    }

    pub fn returning(mut self, value: impl Serialize) -> Self {
        self.return_value = serde_json::to_value(value).expect("return values serialise");
        self
    }
}

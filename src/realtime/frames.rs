//! Phoenix channels v2 JSON frames: `[join_ref, ref, topic, event, payload]`.
//!
//! Owns parsing what a client sends and serializing what the server sends. Refs are
//! opaque strings (Phoenix JS sends stringified integers) or `null`; a number is accepted
//! and kept as its decimal text so a hand-written client is not rejected for it.
//! Invariant: parsing never panics; anything that is not a 5-element array with string
//! topic and event is a [`FrameError`].

use bytestring::ByteString;
use serde_json::{Value, json};

/// The topic Phoenix uses for socket-level messages (heartbeats).
pub const PHOENIX_TOPIC: &str = "phoenix";

/// One frame, either direction.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub join_ref: Option<String>,
    pub msg_ref: Option<String>,
    pub topic: String,
    pub event: String,
    pub payload: Value,
}

/// Why a client frame could not be understood.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FrameError {
    #[error("frame is not valid JSON: {0}")]
    Json(String),
    #[error("frame must be a JSON array [join_ref, ref, topic, event, payload]")]
    Shape,
    #[error("`{0}` must be a string or null")]
    Ref(&'static str),
    #[error("`{0}` must be a non-empty string")]
    Field(&'static str),
}

fn parse_ref(value: &Value, name: &'static str) -> Result<Option<String>, FrameError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        _ => Err(FrameError::Ref(name)),
    }
}

fn parse_name(value: &Value, name: &'static str) -> Result<String, FrameError> {
    match value {
        Value::String(s) if !s.is_empty() => Ok(s.clone()),
        _ => Err(FrameError::Field(name)),
    }
}

impl Frame {
    /// Parses a client text frame.
    pub fn parse(text: &str) -> Result<Frame, FrameError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| FrameError::Json(e.to_string()))?;
        let Value::Array(mut parts) = value else {
            return Err(FrameError::Shape);
        };
        if parts.len() != 5 {
            return Err(FrameError::Shape);
        }
        let payload = parts.pop().unwrap_or(Value::Null);
        Ok(Frame {
            join_ref: parse_ref(&parts[0], "join_ref")?,
            msg_ref: parse_ref(&parts[1], "ref")?,
            topic: parse_name(&parts[2], "topic")?,
            event: parse_name(&parts[3], "event")?,
            payload,
        })
    }

    /// Best-effort refs and topic of a frame that failed to parse, so the error reply can
    /// still be addressed to the right push when the array shape was right.
    pub fn salvage(text: &str) -> Option<(Option<String>, Option<String>, String)> {
        let Ok(Value::Array(parts)) = serde_json::from_str::<Value>(text) else {
            return None;
        };
        let topic = parts.get(2)?.as_str()?.to_owned();
        let get = |i: usize| parts.get(i).and_then(Value::as_str).map(str::to_owned);
        Some((get(0), get(1), topic))
    }

    /// The wire text of this frame.
    pub fn to_text(&self) -> ByteString {
        let array = json!([
            self.join_ref,
            self.msg_ref,
            self.topic,
            self.event,
            self.payload
        ]);
        ByteString::from(array.to_string())
    }

    /// `phx_reply` with `{"status":"ok","response":response}` to a client push.
    pub fn reply_ok(
        join_ref: Option<String>,
        msg_ref: Option<String>,
        topic: &str,
        response: Value,
    ) -> Frame {
        Frame {
            join_ref,
            msg_ref,
            topic: topic.to_owned(),
            event: "phx_reply".into(),
            payload: json!({"status": "ok", "response": response}),
        }
    }

    /// `phx_reply` with `{"status":"error","response":{"reason":reason}}`.
    pub fn reply_error(
        join_ref: Option<String>,
        msg_ref: Option<String>,
        topic: &str,
        reason: &str,
    ) -> Frame {
        Frame {
            join_ref,
            msg_ref,
            topic: topic.to_owned(),
            event: "phx_reply".into(),
            payload: json!({"status": "error", "response": {"reason": reason}}),
        }
    }

    /// `phx_close` for a channel the server ends (e.g. after a leave).
    pub fn close(join_ref: Option<String>, topic: &str) -> Frame {
        Frame {
            join_ref,
            msg_ref: None,
            topic: topic.to_owned(),
            event: "phx_close".into(),
            payload: json!({}),
        }
    }
}

/// Serializes a server push (`ref` is always null for pushes). Done once per payload and
/// the text shared by every subscriber with the same `join_ref`.
pub fn push_text(join_ref: Option<&str>, topic: &str, event: &str, payload: &str) -> ByteString {
    let join_ref = match join_ref {
        Some(r) => Value::String(r.to_owned()).to_string(),
        None => "null".to_owned(),
    };
    let topic = Value::String(topic.to_owned()).to_string();
    let event = Value::String(event.to_owned()).to_string();
    ByteString::from(format!("[{join_ref},null,{topic},{event},{payload}]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_frame_parses_into_its_parts() {
        let f = Frame::parse(r#"["3","3","feeds:c:u","phx_join",{"client_a":{}}]"#).unwrap();
        assert_eq!(f.join_ref.as_deref(), Some("3"));
        assert_eq!(f.msg_ref.as_deref(), Some("3"));
        assert_eq!(f.topic, "feeds:c:u");
        assert_eq!(f.event, "phx_join");
        assert_eq!(f.payload, json!({"client_a": {}}));
    }

    #[test]
    fn a_heartbeat_has_a_null_join_ref() {
        let f = Frame::parse(r#"[null,"7","phoenix","heartbeat",{}]"#).unwrap();
        assert_eq!(f.join_ref, None);
        assert_eq!(f.msg_ref.as_deref(), Some("7"));
    }

    #[test]
    fn numeric_refs_are_kept_as_text() {
        let f = Frame::parse(r#"[1,2,"phoenix","heartbeat",{}]"#).unwrap();
        assert_eq!(f.join_ref.as_deref(), Some("1"));
        assert_eq!(f.msg_ref.as_deref(), Some("2"));
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        for bad in [
            "",
            "{}",
            "not json",
            "[]",
            r#"["1","1","t","e"]"#,
            r#"["1","1","t","e",{},6]"#,
            r#"[{},"1","t","e",{}]"#,
            r#"["1",[],"t","e",{}]"#,
            r#"["1","1",5,"e",{}]"#,
            r#"["1","1","","e",{}]"#,
            r#"["1","1","t",null,{}]"#,
        ] {
            assert!(Frame::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn replies_serialize_as_phoenix_arrays() {
        let ok = Frame::reply_ok(Some("3".into()), Some("4".into()), "t", json!({}));
        assert_eq!(
            &*ok.to_text(),
            r#"["3","4","t","phx_reply",{"response":{},"status":"ok"}]"#
        );
        let err = Frame::reply_error(None, Some("4".into()), "t", "unauthorized");
        let parsed: Value = serde_json::from_str(&err.to_text()).unwrap();
        assert_eq!(
            parsed,
            json!([null, "4", "t", "phx_reply", {"status": "error", "response": {"reason": "unauthorized"}}])
        );
    }

    #[test]
    fn pushes_have_a_null_ref_and_escape_their_strings() {
        let text = push_text(Some("9"), "feeds:c:\"u\"", "new-message", r#"{"a":1}"#);
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            parsed,
            json!(["9", null, "feeds:c:\"u\"", "new-message", {"a": 1}])
        );
        let text = push_text(None, "t", "new-message", "{}");
        assert_eq!(&*text, r#"[null,null,"t","new-message",{}]"#);
    }

    #[test]
    fn salvage_recovers_refs_of_a_bad_frame() {
        assert_eq!(
            Frame::salvage(r#"["1","2","t",5,{}]"#),
            Some((Some("1".into()), Some("2".into()), "t".into()))
        );
        assert_eq!(Frame::salvage("nope"), None);
    }
}

//! Join params (spec §7.2) and the `new-message` payload built from them (§7.3).
//!
//! Two shapes arrive: the socket-manager form `{"client_…": {filters}, …}` (client
//! ≥ 0.14.6) and the legacy flat form `{filters}`. A payload is ref-keyed when it is
//! non-empty, every key starts with `client_` and every value is an object; anything
//! else is legacy. Each ref's filters parse with the same rules as the HTTP feed query.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::model::FeedFilters;
use crate::model::feed_counts::FeedCounts;

/// Most client refs one join may carry: a page rarely mounts more than a few feeds.
pub const MAX_REFS: usize = 64;

/// The subscription state of one joined topic.
///
/// Filter sets are `Arc`s so that sockets sending the same filters share one parse
/// ([`JoinParams::parse_with`]): the official client names each feed with a ref of its
/// own (`client_` + a random id), so whole payloads are never equal, but their filters
/// usually are (every browser of one app mounts the same feed). Per socket this leaves
/// the ref names and two small allocations (issue 20: socket memory).
#[derive(Debug, Clone, PartialEq)]
pub enum JoinParams {
    /// Ref-keyed: one filter set per client feed, in the order the client sent them.
    Refs(Box<[(Box<str>, Arc<FeedFilters>)]>),
    /// One flat filter set (old clients read `payload.metadata`).
    Legacy(Arc<FeedFilters>),
}

impl JoinParams {
    /// Parses a `phx_join` payload, each filter set on its own.
    pub fn parse(payload: &Value) -> Result<JoinParams, String> {
        Self::parse_with(payload, |params| {
            FeedFilters::from_socket_params(params).map(Arc::new)
        })
    }

    /// Parses a `phx_join` payload, each filter set (a JSON object of feed options)
    /// through `filters`, which may hand out one already parsed.
    pub fn parse_with(
        payload: &Value,
        mut filters: impl FnMut(&Value) -> Result<Arc<FeedFilters>, String>,
    ) -> Result<JoinParams, String> {
        let map = match payload {
            Value::Object(map) => map,
            Value::Null => return filters(&Value::Object(Map::new())).map(JoinParams::Legacy),
            _ => return Err("join params must be an object".into()),
        };
        if is_ref_keyed(map) {
            if map.len() > MAX_REFS {
                return Err(format!("at most {MAX_REFS} client refs per join"));
            }
            // A boxed slice: no spare capacity kept for as long as the socket lives.
            let refs = map
                .iter()
                .map(|(r, params)| {
                    filters(params)
                        .map(|f| (Box::from(r.as_str()), f))
                        .map_err(|e| format!("{r}: {e}"))
                })
                .collect::<Result<Box<[_]>, _>>()?;
            Ok(JoinParams::Refs(refs))
        } else {
            filters(payload).map(JoinParams::Legacy)
        }
    }

    /// Every filter set, in order (one for legacy).
    pub fn filters(&self) -> Vec<&FeedFilters> {
        match self {
            JoinParams::Refs(refs) => refs.iter().map(|(_, f)| &**f).collect(),
            JoinParams::Legacy(f) => vec![&**f],
        }
    }

    /// The `new-message` payload. `counts[i]` belongs to `filters()[i]`; `attn[i]` says
    /// whether that filter set matched the new item(s).
    pub fn new_message_payload(&self, counts: &[FeedCounts], attn: &[bool]) -> Value {
        match self {
            JoinParams::Legacy(_) => json!({
                "event": "new-message",
                "metadata": counts.first().copied().unwrap_or_default(),
                "data": {},
                "attn": [],
            }),
            JoinParams::Refs(refs) => {
                let mut data = Map::new();
                let mut names = Vec::new();
                let mut top = None;
                for (i, (name, _)) in refs.iter().enumerate() {
                    let c = counts.get(i).copied().unwrap_or_default();
                    data.insert(name.to_string(), json!({ "metadata": c }));
                    if attn.get(i).copied().unwrap_or(false) {
                        names.push(Value::String(name.to_string()));
                        top.get_or_insert(c);
                    }
                }
                // Deprecated top-level counts: those of the first ref that reacts.
                let top = top.or_else(|| counts.first().copied()).unwrap_or_default();
                json!({
                    "event": "new-message",
                    "metadata": top,
                    "data": data,
                    "attn": names,
                })
            }
        }
    }
}

fn is_ref_keyed(map: &Map<String, Value>) -> bool {
    !map.is_empty()
        && map
            .iter()
            .all(|(k, v)| k.starts_with("client_") && v.is_object())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_keyed_params_parse_per_ref() {
        let p = JoinParams::parse(&json!({
            "client_a": {"archived": "exclude", "tenant": "acme", "__experimentalCrossBrowserUpdates": true},
            "client_b": {"has_tenant": true, "page_size": 20}
        }))
        .unwrap();
        let JoinParams::Refs(refs) = p else {
            panic!("expected refs")
        };
        assert_eq!(refs.len(), 2);
        assert_eq!(&*refs[0].0, "client_a");
        assert_eq!(refs[0].1.tenant.as_deref(), Some("acme"));
        assert_eq!(refs[1].1.has_tenant, Some(true));
    }

    #[test]
    fn flat_params_are_legacy() {
        let p = JoinParams::parse(&json!({"archived": "exclude", "tenant": "acme"})).unwrap();
        assert!(matches!(p, JoinParams::Legacy(f) if f.tenant.as_deref() == Some("acme")));
        assert!(matches!(
            JoinParams::parse(&json!({})).unwrap(),
            JoinParams::Legacy(_)
        ));
        // A `client_` key whose value is not an object makes the whole payload legacy.
        assert!(matches!(
            JoinParams::parse(&json!({"client_a": "x"})),
            Ok(JoinParams::Legacy(_))
        ));
    }

    #[test]
    fn bad_params_are_errors() {
        assert!(JoinParams::parse(&json!([1])).is_err());
        assert!(JoinParams::parse(&json!({"client_a": {"status": "bogus"}})).is_err());
    }

    #[test]
    fn payload_lists_only_matching_refs_in_attn() {
        let p = JoinParams::parse(&json!({"client_a": {}, "client_b": {"tenant": "t"}})).unwrap();
        let a = FeedCounts {
            total_count: 3,
            unread_count: 2,
            unseen_count: 1,
        };
        let b = FeedCounts {
            total_count: 1,
            unread_count: 1,
            unseen_count: 1,
        };
        let v = p.new_message_payload(&[a, b], &[false, true]);
        assert_eq!(v["event"], "new-message");
        assert_eq!(v["attn"], json!(["client_b"]));
        assert_eq!(v["metadata"]["total_count"], 1);
        assert_eq!(v["data"]["client_a"]["metadata"]["total_count"], 3);
        assert_eq!(v["data"]["client_b"]["metadata"]["unseen_count"], 1);
    }
}

//! An in-app step's item lifecycle (Tidings' extension of Knock's workflow format):
//! `expires_after` (a duration from creation, shaped like a delay's `delay_for`),
//! `expires_at_field_path` (a data path to an ISO-8601 time, like a delay's
//! `delay_until_field_path`) and `pinned`. Parsed with the step; no I/O.

use serde_json::{Map, Value};

use super::steps::check_path;
use super::{Duration, Errors};

/// When a step's items expire.
#[derive(Debug, Clone, PartialEq)]
pub enum Expiry {
    /// This long after the item is created.
    After(Duration),
    /// At the ISO-8601 time found at this path (`data.valid_until`) when the step runs.
    AtFieldPath(String),
}

/// What a channel step says about its items' lifecycle.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemLifecycle {
    pub expiry: Option<Expiry>,
    /// Items are created pinned.
    pub pinned: bool,
}

/// Parses the lifecycle keys of channel step `s` (at `at`), recording bad values under
/// the field's own name.
pub(super) fn parse(s: &Map<String, Value>, at: &str, errors: &mut Errors) -> ItemLifecycle {
    let after = match s.get("expires_after") {
        None | Some(Value::Null) => None,
        Some(v) => match Duration::parse(v) {
            Ok(d) => Some(d),
            Err(m) => {
                errors.push(&format!("{at}.expires_after"), m);
                None
            }
        },
    };
    let path = match s.get("expires_at_field_path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => match check_path(p) {
            Ok(()) => Some(p.clone()),
            Err(m) => {
                errors.push(&format!("{at}.expires_at_field_path"), m);
                None
            }
        },
        Some(_) => {
            errors.push(
                &format!("{at}.expires_at_field_path"),
                "must be a string path such as `data.valid_until`",
            );
            None
        }
    };
    let expiry = match (after, path) {
        (Some(_), Some(_)) => {
            errors.push(
                &format!("{at}.expires_after"),
                "give either `expires_after` or `expires_at_field_path`, not both",
            );
            None
        }
        (Some(d), None) => Some(Expiry::After(d)),
        (None, Some(p)) => Some(Expiry::AtFieldPath(p)),
        (None, None) => None,
    };
    let pinned = match s.get("pinned") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.push(&format!("{at}.pinned"), "must be true or false");
            false
        }
    };
    ItemLifecycle { expiry, pinned }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parsed(step: Value) -> (ItemLifecycle, Vec<String>) {
        let mut errors = Errors {
            prefix: String::new(),
            list: Vec::new(),
        };
        let l = parse(step.as_object().expect("object"), "steps[0]", &mut errors);
        (l, errors.list.into_iter().map(|e| e.field).collect())
    }

    #[test]
    fn expiry_and_pinning_parse_from_the_step() {
        let (l, errors) =
            parsed(json!({"expires_after": {"unit": "hours", "value": 2}, "pinned": true}));
        assert!(errors.is_empty(), "{errors:?}");
        assert!(l.pinned);
        assert!(matches!(l.expiry, Some(Expiry::After(d)) if d.value == 2));
        let (l, _) = parsed(json!({"expires_at_field_path": "data.valid_until"}));
        assert_eq!(
            l.expiry,
            Some(Expiry::AtFieldPath("data.valid_until".into()))
        );
        assert_eq!(parsed(json!({})).0, ItemLifecycle::default());
    }

    #[test]
    fn bad_values_name_their_field() {
        for (step, field) in [
            (
                json!({"expires_after": {"unit": "hours", "value": 0}}),
                "steps[0].expires_after",
            ),
            (json!({"expires_after": "2h"}), "steps[0].expires_after"),
            (
                json!({"expires_at_field_path": 5}),
                "steps[0].expires_at_field_path",
            ),
            (
                json!({"expires_at_field_path": "nope.x"}),
                "steps[0].expires_at_field_path",
            ),
            (json!({"pinned": "yes"}), "steps[0].pinned"),
            (
                json!({"expires_after": {"unit": "days", "value": 1}, "expires_at_field_path": "data.t"}),
                "steps[0].expires_after",
            ),
        ] {
            assert_eq!(parsed(step.clone()).1, [field], "{step}");
        }
    }
}

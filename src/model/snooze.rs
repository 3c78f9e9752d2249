//! A snooze request's `snoozed_until` (Tidings' extension of Knock's message API),
//! checked against the clock: at least [`MIN_SNOOZE`] and at most [`MAX_SNOOZE`] ahead,
//! so a snooze always hides the item for a while and never for longer than a season.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// The shortest snooze: one minute.
pub const MIN_SNOOZE: chrono::TimeDelta = chrono::TimeDelta::minutes(1);
/// The longest snooze: 90 days.
pub const MAX_SNOOZE: chrono::TimeDelta = chrono::TimeDelta::days(90);

/// Parses `snoozed_until` (an ISO-8601 time with an offset) at `now`; the error says
/// what is wrong (the caller names the field).
pub fn parse_until(value: Option<&Value>, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let raw = match value {
        None | Some(Value::Null) => return Err("is required: an ISO-8601 time".into()),
        Some(Value::String(s)) => s,
        Some(_) => return Err("must be an ISO-8601 time string".into()),
    };
    let Some(until) = crate::clock::parse(raw) else {
        return Err(format!(
            "`{raw}` is not an ISO-8601 time with an offset (e.g. 2026-05-01T09:00:00Z)"
        ));
    };
    if until < now + MIN_SNOOZE {
        return Err("must be at least 1 minute from now".into());
    }
    if until > now + MAX_SNOOZE {
        return Err("must be at most 90 days from now".into());
    }
    Ok(until)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn snoozes_between_one_minute_and_ninety_days_are_accepted() {
        let now = crate::clock::parse("2026-01-01T00:00:00Z").expect("now");
        let ok = |v: Value| parse_until(Some(&v), now);
        assert_eq!(
            ok(json!("2026-01-01T00:01:00Z")).expect("one minute"),
            now + MIN_SNOOZE
        );
        assert!(
            ok(json!("2026-01-01T01:00:00+01:00")).is_err(),
            "now, in another offset"
        );
        assert!(ok(json!("2026-04-01T00:00:00Z")).is_ok(), "90 days");
        assert!(ok(json!("2026-04-01T00:00:01Z")).is_err());
        assert!(ok(json!("2026-01-01T00:00:59Z")).is_err());
        assert!(ok(json!("tomorrow")).is_err());
        assert!(ok(json!(1767225600)).is_err());
        assert!(parse_until(None, now).is_err());
    }
}

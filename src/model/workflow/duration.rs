//! Knock's `Duration` (`{unit, value}`) as written in workflow steps (`delay_for`,
//! `batch_window`, `throttle_window`).

use chrono::{DateTime, Months, Utc};
use serde_json::Value;

/// The longest duration Tidings accepts anywhere in a workflow (a year).
pub const MAX_DAYS: i64 = 366;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Seconds,
    Minutes,
    Hours,
    Days,
    Weeks,
    Months,
}

/// A positive duration of at most [`MAX_DAYS`] (months count as 31 days for that check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration {
    pub unit: Unit,
    pub value: u32,
}

impl Duration {
    /// Parses `{unit, value}`; the error says what is wrong (the caller names the field).
    pub fn parse(v: &Value) -> Result<Duration, String> {
        let Some(obj) = v.as_object() else {
            return Err("must be an object `{unit, value}`".into());
        };
        let unit = match obj.get("unit").and_then(Value::as_str) {
            Some("seconds") => Unit::Seconds,
            Some("minutes") => Unit::Minutes,
            Some("hours") => Unit::Hours,
            Some("days") => Unit::Days,
            Some("weeks") => Unit::Weeks,
            Some("months") => Unit::Months,
            _ => {
                return Err(
                    "`unit` must be one of seconds, minutes, hours, days, weeks, months".into(),
                );
            }
        };
        let value = match obj.get("value") {
            Some(Value::Number(n)) => n.as_i64().ok_or("`value` must be a whole number")?,
            // knock-cli writes numbers, but a numeric string is unambiguous.
            Some(Value::String(s)) => s
                .trim()
                .parse::<i64>()
                .map_err(|_| "`value` must be a whole number")?,
            _ => return Err("`value` is required: a whole number".into()),
        };
        if value <= 0 {
            return Err("`value` must be greater than zero".into());
        }
        let seconds_per = match unit {
            Unit::Seconds => 1,
            Unit::Minutes => 60,
            Unit::Hours => 3600,
            Unit::Days => 86_400,
            Unit::Weeks => 7 * 86_400,
            Unit::Months => 31 * 86_400,
        };
        if value.saturating_mul(seconds_per) > MAX_DAYS * 86_400 {
            return Err(format!("must be at most {MAX_DAYS} days"));
        }
        Ok(Duration {
            unit,
            value: u32::try_from(value).map_err(|_| "`value` is too large")?,
        })
    }

    /// `t` plus this duration (calendar months for `months`).
    pub fn after(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let v = i64::from(self.value);
        let add = |d: chrono::Duration| t.checked_add_signed(d).unwrap_or(t);
        match self.unit {
            Unit::Seconds => add(chrono::Duration::seconds(v)),
            Unit::Minutes => add(chrono::Duration::minutes(v)),
            Unit::Hours => add(chrono::Duration::hours(v)),
            Unit::Days => add(chrono::Duration::days(v)),
            Unit::Weeks => add(chrono::Duration::weeks(v)),
            Unit::Months => t.checked_add_months(Months::new(self.value)).unwrap_or(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_parse_and_refuse_impossible_values() {
        let d = Duration::parse(&json!({"unit": "minutes", "value": 5})).expect("ok");
        let t = DateTime::parse_from_rfc3339("2026-01-31T00:00:00Z")
            .expect("t")
            .with_timezone(&Utc);
        assert_eq!(d.after(t), t + chrono::Duration::minutes(5));
        let m = Duration::parse(&json!({"unit": "months", "value": 1})).expect("ok");
        assert_eq!(m.after(t).to_rfc3339(), "2026-02-28T00:00:00+00:00");
        for bad in [
            json!({"unit": "minutes", "value": 0}),
            json!({"unit": "minutes", "value": -1}),
            json!({"unit": "minutes", "value": 1.5}),
            json!({"unit": "fortnights", "value": 1}),
            json!({"unit": "weeks", "value": 60}),
            json!({"unit": "days"}),
            json!(5),
        ] {
            assert!(Duration::parse(&bad).is_err(), "{bad} accepted");
        }
    }
}

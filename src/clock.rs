//! Timestamps as Knock writes them: ISO-8601 UTC with microseconds (`…T22:08:30.816897Z`).
//! Stored in the same form, so lexical order is time order.

use chrono::{DateTime, SecondsFormat, Utc};

/// Now, formatted for storage and the wire.
pub fn now() -> String {
    format(Utc::now())
}

/// Formats a UTC instant the one way Tidings stores and answers timestamps.
pub fn format(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Now, in Unix seconds (JWT `exp`/`iat` arithmetic).
pub fn unix_now() -> u64 {
    u64::try_from(Utc::now().timestamp()).unwrap_or(0)
}

/// Parses any RFC 3339 timestamp (any offset) into the stored UTC form, or `None`.
pub fn normalize(input: &str) -> Option<String> {
    DateTime::parse_from_rfc3339(input)
        .ok()
        .map(|t| format(t.with_timezone(&Utc)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_converts_offsets_to_utc_micros() {
        assert_eq!(
            normalize("2026-01-01T02:00:00+02:00").as_deref(),
            Some("2026-01-01T00:00:00.000000Z")
        );
        assert_eq!(normalize("yesterday"), None);
    }

    #[test]
    fn formatted_timestamps_sort_lexically_in_time_order() {
        let a = normalize("2026-01-01T00:00:00Z").unwrap_or_default();
        let b = normalize("2026-01-01T00:00:00.5Z").unwrap_or_default();
        assert!(a < b);
    }
}

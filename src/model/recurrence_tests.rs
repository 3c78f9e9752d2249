use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::*;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn rules(v: Value) -> Vec<RepeatRule> {
    let mut errors = Vec::new();
    let rules = parse_repeats(Some(&v), &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    rules
}

fn rec(repeats: Value, start: &str, ending_at: Option<&str>) -> Recurrence {
    Recurrence {
        rules: rules(repeats),
        start: t(start),
        explicit_start: true,
        ending_at: ending_at.map(t),
        zone: chrono_tz::UTC,
    }
}

/// The first `n` occurrences from `first(now)` on.
fn series(r: &Recurrence, now: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut next = r.first(t(now));
    while let Some(o) = next {
        if out.len() == n {
            break;
        }
        out.push(o.format("%Y-%m-%dT%H:%M %a").to_string());
        next = r.next_after(o);
    }
    out
}

fn field_errors(v: Value) -> Vec<String> {
    let mut errors = Vec::new();
    parse_repeats(Some(&v), &mut errors);
    errors.into_iter().map(|e| e.field).collect()
}

#[test]
fn daily_fires_every_day_at_the_given_time() {
    let r = rec(
        json!([{"frequency": "daily", "hours": 9, "minutes": 30}]),
        "2026-03-01T12:00:00Z",
        None,
    );
    assert_eq!(
        series(&r, "2026-03-01T12:00:00Z", 3),
        [
            "2026-03-02T09:30 Mon",
            "2026-03-03T09:30 Tue",
            "2026-03-04T09:30 Wed"
        ]
    );
}

#[test]
fn defaults_take_the_start_time_and_the_start_itself_can_be_the_first_occurrence() {
    let r = rec(
        json!([{"frequency": "daily"}]),
        "2026-03-01T08:15:00Z",
        None,
    );
    assert_eq!(
        series(&r, "2026-03-01T08:15:00Z", 2),
        ["2026-03-01T08:15 Sun", "2026-03-02T08:15 Mon"]
    );
    // Created a little later the same day: the first is tomorrow's.
    assert_eq!(
        series(&r, "2026-03-01T08:15:20Z", 1),
        ["2026-03-02T08:15 Mon"]
    );
}

#[test]
fn daily_interval_and_weekdays_combine() {
    let every_other = rec(
        json!([{"frequency": "daily", "interval": 2, "hours": 7, "minutes": 0}]),
        "2026-03-02T00:00:00Z",
        None,
    );
    assert_eq!(
        series(&every_other, "2026-03-02T00:00:00Z", 3),
        [
            "2026-03-02T07:00 Mon",
            "2026-03-04T07:00 Wed",
            "2026-03-06T07:00 Fri"
        ]
    );
    let weekdays = rec(
        json!([{"frequency": "daily", "days": ["mon", "tue", "wed", "thu", "fri"], "hours": 8, "minutes": 0}]),
        "2026-03-06T09:00:00Z", // a Friday, after 08:00
        None,
    );
    assert_eq!(
        series(&weekdays, "2026-03-06T09:00:00Z", 2),
        ["2026-03-09T08:00 Mon", "2026-03-10T08:00 Tue"]
    );
}

#[test]
fn weekly_fires_on_the_listed_days_every_interval_weeks() {
    let r = rec(
        json!([{"frequency": "weekly", "interval": 2, "days": ["fri", "mon"], "hours": 17, "minutes": 0}]),
        "2026-03-04T00:00:00Z", // a Wednesday
        None,
    );
    assert_eq!(
        series(&r, "2026-03-04T00:00:00Z", 4),
        [
            "2026-03-06T17:00 Fri",
            "2026-03-16T17:00 Mon",
            "2026-03-20T17:00 Fri",
            "2026-03-30T17:00 Mon"
        ]
    );
    // Without days: the start's weekday.
    let r = rec(
        json!([{"frequency": "weekly"}]),
        "2026-03-04T10:00:00Z",
        None,
    );
    assert_eq!(
        series(&r, "2026-03-04T10:00:00Z", 2),
        ["2026-03-04T10:00 Wed", "2026-03-11T10:00 Wed"]
    );
}

#[test]
fn monthly_on_the_31st_uses_each_short_months_last_day() {
    let r = rec(
        json!([{"frequency": "monthly", "day_of_month": 31, "hours": 0, "minutes": 0}]),
        "2026-01-01T00:00:00Z",
        None,
    );
    assert_eq!(
        series(&r, "2026-01-01T00:00:00Z", 4),
        [
            "2026-01-31T00:00 Sat",
            "2026-02-28T00:00 Sat",
            "2026-03-31T00:00 Tue",
            "2026-04-30T00:00 Thu"
        ]
    );
    let leap = rec(
        json!([{"frequency": "monthly", "day_of_month": 30, "interval": 12, "hours": 6}]),
        "2028-02-01T00:00:00Z",
        None,
    );
    assert_eq!(
        series(&leap, "2028-02-01T00:00:00Z", 2),
        ["2028-02-29T06:00 Tue", "2029-02-28T06:00 Wed"]
    );
}

#[test]
fn monthly_interval_counts_months_from_the_start_across_years() {
    let r = rec(
        json!([{"frequency": "monthly", "interval": 3, "day_of_month": 15, "hours": 12, "minutes": 0}]),
        "2026-11-20T00:00:00Z",
        None,
    );
    assert_eq!(
        series(&r, "2026-11-20T00:00:00Z", 3),
        [
            "2027-02-15T12:00 Mon",
            "2027-05-15T12:00 Sat",
            "2027-08-15T12:00 Sun"
        ]
    );
}

#[test]
fn hourly_fires_every_interval_hours_at_the_minute_and_respects_days() {
    let r = rec(
        json!([{"frequency": "hourly", "interval": 5, "minutes": 10}]),
        "2026-03-01T22:40:00Z",
        None,
    );
    assert_eq!(
        series(&r, "2026-03-01T22:40:00Z", 3),
        [
            "2026-03-02T03:10 Mon",
            "2026-03-02T08:10 Mon",
            "2026-03-02T13:10 Mon"
        ]
    );
    let weekend = rec(
        json!([{"frequency": "hourly", "days": ["sat"], "minutes": 0}]),
        "2026-03-06T23:30:00Z", // Friday night
        None,
    );
    assert_eq!(
        series(&weekend, "2026-03-06T23:30:00Z", 2),
        ["2026-03-07T00:00 Sat", "2026-03-07T01:00 Sat"]
    );
    let after_saturday = weekend.next_after(t("2026-03-07T23:00:00Z"));
    assert_eq!(after_saturday, Some(t("2026-03-14T00:00:00Z")));
}

#[test]
fn several_rules_merge_in_time_order() {
    let r = rec(
        json!([{"frequency": "daily", "hours": 18, "minutes": 0},
               {"frequency": "daily", "hours": 9, "minutes": 0}]),
        "2026-03-01T00:00:00Z",
        None,
    );
    assert_eq!(
        series(&r, "2026-03-01T00:00:00Z", 3),
        [
            "2026-03-01T09:00 Sun",
            "2026-03-01T18:00 Sun",
            "2026-03-02T09:00 Mon"
        ]
    );
}

#[test]
fn ending_at_is_the_last_possible_occurrence() {
    let r = rec(
        json!([{"frequency": "daily", "hours": 9, "minutes": 0}]),
        "2026-03-01T00:00:00Z",
        Some("2026-03-03T09:00:00Z"),
    );
    assert_eq!(
        series(&r, "2026-03-01T00:00:00Z", 10),
        [
            "2026-03-01T09:00 Sun",
            "2026-03-02T09:00 Mon",
            "2026-03-03T09:00 Tue"
        ]
    );
    let ended = rec(
        json!([{"frequency": "daily"}]),
        "2026-03-01T00:00:00Z",
        Some("2026-02-01T00:00:00Z"),
    );
    assert_eq!(ended.first(t("2026-03-01T00:00:00Z")), None);
}

#[test]
fn a_one_off_occurs_once_at_scheduled_at_even_when_that_is_past() {
    let r = rec(json!(null), "2026-03-01T10:00:00Z", None);
    assert_eq!(
        r.first(t("2026-03-05T00:00:00Z")),
        Some(t("2026-03-01T10:00:00Z"))
    );
    assert_eq!(r.next_after(t("2026-03-01T10:00:00Z")), None);
}

#[test]
fn after_downtime_the_next_occurrence_is_the_first_after_now_not_each_missed_one() {
    let r = rec(
        json!([{"frequency": "daily", "hours": 9, "minutes": 0}]),
        "2026-03-01T00:00:00Z",
        None,
    );
    // Down from the 2nd to the 5th at noon: one catch-up fire, then the 6th.
    assert_eq!(
        r.next_after(t("2026-03-05T12:00:00Z")),
        Some(t("2026-03-06T09:00:00Z"))
    );
}

#[test]
fn rule_that_can_never_match_has_no_occurrence() {
    // Every 7 days from a Tuesday is always a Tuesday: never a Monday.
    let r = rec(
        json!([{"frequency": "daily", "interval": 7, "days": ["mon"]}]),
        "2026-03-03T00:00:00Z",
        None,
    );
    assert_eq!(r.first(t("2026-03-03T00:00:00Z")), None);
}

#[test]
fn wire_form_is_knocks_schedule_repeat_with_normalized_days() {
    let r = rules(json!([{"frequency": "weekly", "days": ["fri", "mon", "fri"]}]));
    assert_eq!(
        r[0].to_wire(),
        json!({"__typename": "ScheduleRepeat", "frequency": "weekly", "interval": 1,
               "days": ["mon", "fri"], "hours": null, "minutes": null, "day_of_month": null})
    );
}

#[test]
fn bad_rules_name_the_offending_field() {
    assert_eq!(field_errors(json!([{}])), ["repeats[0].frequency"]);
    assert_eq!(
        field_errors(json!([{"frequency": "yearly"}])),
        ["repeats[0].frequency"]
    );
    assert_eq!(
        field_errors(json!([{"frequency": "daily", "interval": 0}])),
        ["repeats[0].interval"]
    );
    assert_eq!(
        field_errors(json!([{"frequency": "daily", "interval": 101}])),
        ["repeats[0].interval"]
    );
    assert_eq!(
        field_errors(json!([{"frequency": "daily", "hours": 24}])),
        ["repeats[0].hours"]
    );
    assert_eq!(
        field_errors(json!([{"frequency": "daily"}, {"frequency": "daily", "minutes": -1}])),
        ["repeats[1].minutes"]
    );
    assert_eq!(
        field_errors(json!([{"frequency": "monthly", "day_of_month": 32}])),
        ["repeats[0].day_of_month"]
    );
    assert_eq!(
        field_errors(json!([{"frequency": "weekly", "days": ["monday"]}])),
        ["repeats[0].days"]
    );
    assert_eq!(
        field_errors(json!([{"frequency": "weekly", "days": []}])),
        ["repeats[0].days"]
    );
    assert_eq!(
        field_errors(json!([{"frequency": "daily", "day_of_month": 3}])),
        ["repeats[0].day_of_month"]
    );
    assert_eq!(
        field_errors(json!([{"frequency": "monthly", "days": ["mon"]}])),
        ["repeats[0].days"]
    );
    assert_eq!(
        field_errors(json!([{"frequency": "hourly", "hours": 3}])),
        ["repeats[0].hours"]
    );
    assert_eq!(field_errors(json!("daily")), ["repeats"]);
    assert_eq!(field_errors(json!(["daily"])), ["repeats[0]"]);
    let many: Vec<Value> = (0..11).map(|_| json!({"frequency": "daily"})).collect();
    assert_eq!(field_errors(Value::Array(many)), ["repeats"]);
}

fn zoned(repeats: Value, start: &str, zone: chrono_tz::Tz) -> Recurrence {
    Recurrence {
        zone,
        ..rec(repeats, start, None)
    }
}

fn utc_series(r: &Recurrence, now: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut next = r.first(t(now));
    while let (Some(o), true) = (next, out.len() < n) {
        out.push(o.format("%Y-%m-%dT%H:%MZ").to_string());
        next = r.next_after(o);
    }
    out
}

#[test]
fn a_daily_rule_reads_its_hours_on_the_recipients_wall_clock_across_dst() {
    // 09:00 in New York: 14:00Z in winter (EST), 13:00Z after clocks go forward on
    // Sunday 2026-03-08.
    let r = zoned(
        json!([{"frequency": "daily", "hours": 9, "minutes": 0}]),
        "2026-03-06T00:00:00Z",
        chrono_tz::America::New_York,
    );
    assert_eq!(
        utc_series(&r, "2026-03-06T00:00:00Z", 4),
        [
            "2026-03-06T14:00Z",
            "2026-03-07T14:00Z",
            "2026-03-08T13:00Z",
            "2026-03-09T13:00Z"
        ]
    );
}

#[test]
fn a_wall_time_skipped_by_dst_fires_after_the_gap_and_a_repeated_one_once() {
    let skipped = zoned(
        json!([{"frequency": "daily", "hours": 2, "minutes": 30}]),
        "2026-03-07T12:00:00Z",
        chrono_tz::America::New_York,
    );
    // 02:30 does not exist on 2026-03-08: it fires at 03:30 EDT (07:30Z).
    assert_eq!(
        utc_series(&skipped, "2026-03-07T12:00:00Z", 3),
        [
            "2026-03-08T07:30Z",
            "2026-03-09T06:30Z",
            "2026-03-10T06:30Z"
        ]
    );
    let repeated = zoned(
        json!([{"frequency": "daily", "hours": 1, "minutes": 30}]),
        "2026-10-31T12:00:00Z",
        chrono_tz::America::New_York,
    );
    // 01:30 happens twice on 2026-11-01: it fires once, at the first (EDT, 05:30Z).
    assert_eq!(
        utc_series(&repeated, "2026-10-31T12:00:00Z", 3),
        [
            "2026-11-01T05:30Z",
            "2026-11-02T06:30Z",
            "2026-11-03T06:30Z"
        ]
    );
}

#[test]
fn weekdays_and_month_days_are_the_recipients_local_days() {
    // Monday 08:00 in Tokyo is Sunday 23:00Z.
    let weekly = zoned(
        json!([{"frequency": "weekly", "days": ["mon"], "hours": 8, "minutes": 0}]),
        "2026-11-01T00:00:00Z",
        chrono_tz::Asia::Tokyo,
    );
    assert_eq!(
        utc_series(&weekly, "2026-11-01T00:00:00Z", 2),
        ["2026-11-01T23:00Z", "2026-11-08T23:00Z"]
    );
    // The 1st at 00:30 in Los Angeles is the 1st 08:30Z (PDT -7 until Nov 1 2026 09:00Z,
    // then PST -8).
    let monthly = zoned(
        json!([{"frequency": "monthly", "day_of_month": 1, "hours": 0, "minutes": 30}]),
        "2026-10-15T00:00:00Z",
        chrono_tz::America::Los_Angeles,
    );
    assert_eq!(
        utc_series(&monthly, "2026-10-15T00:00:00Z", 2),
        ["2026-11-01T07:30Z", "2026-12-01T08:30Z"]
    );
}

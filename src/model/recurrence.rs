//! Schedule recurrence (Knock's `repeats`): parsing the rules and computing occurrences.
//! Pure: time is always passed in.
//!
//! Semantics (occurrences fall on whole minutes; days, hours and minutes are read on the
//! wall clock of the schedule's zone — its recipient's `timezone`, else UTC; a time a DST
//! change skips moves forward by the gap, a repeated one fires at its first instance):
//! - A schedule's occurrences are the union of its rules' occurrences, never before its
//!   `start` (its `scheduled_at`, else when it was created) and never after `ending_at`
//!   (inclusive). With no rules, the one occurrence is `scheduled_at` itself.
//! - `hours`/`minutes` default to `start`'s hour and minute; `interval` (default 1) counts
//!   periods from `start`'s period.
//! - `hourly`: every `interval` hours at `minutes`; `days` limits the weekdays.
//! - `daily`: every `interval` days at `hours:minutes`; `days` limits the weekdays.
//! - `weekly`: every `interval` weeks (Monday-based), on `days` (default: `start`'s
//!   weekday) at `hours:minutes`.
//! - `monthly`: every `interval` months on `day_of_month` (default: `start`'s day); a month
//!   without that day (the 31st in April, the 30th in February) uses its last day.

use chrono::{
    DateTime, Datelike, Days, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike,
    Utc, Weekday,
};
use chrono_tz::Tz;
use serde_json::{Value, json};

use crate::model::field_error::FieldError;

/// Most rules one schedule may have.
pub const MAX_RULES: usize = 10;
/// Largest `interval` (a limit of ours; Knock documents none).
pub const MAX_INTERVAL: u32 = 100;
/// Days searched for a rule's next occurrence: enough for `MAX_INTERVAL` months plus a
/// clamped month end, so a rule that occurs at all is found.
const SEARCH_DAYS: u64 = 31 * MAX_INTERVAL as u64 + 62;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frequency {
    Hourly,
    Daily,
    Weekly,
    Monthly,
}

impl Frequency {
    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "hourly" => Some(Frequency::Hourly),
            "daily" => Some(Frequency::Daily),
            "weekly" => Some(Frequency::Weekly),
            "monthly" => Some(Frequency::Monthly),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Frequency::Hourly => "hourly",
            Frequency::Daily => "daily",
            Frequency::Weekly => "weekly",
            Frequency::Monthly => "monthly",
        }
    }
}

const DAY_NAMES: [(&str, Weekday); 7] = [
    ("mon", Weekday::Mon),
    ("tue", Weekday::Tue),
    ("wed", Weekday::Wed),
    ("thu", Weekday::Thu),
    ("fri", Weekday::Fri),
    ("sat", Weekday::Sat),
    ("sun", Weekday::Sun),
];

fn day_name(d: Weekday) -> &'static str {
    DAY_NAMES[d.num_days_from_monday() as usize].0
}

/// One validated `ScheduleRepeat` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepeatRule {
    pub frequency: Frequency,
    pub interval: u32,
    /// Sorted Monday first, no duplicates; `None` = no restriction (or, weekly, `start`'s).
    pub days: Option<Vec<Weekday>>,
    pub hours: Option<u32>,
    pub minutes: Option<u32>,
    pub day_of_month: Option<u32>,
}

impl RepeatRule {
    /// Parses one rule; problems are reported under `at` (e.g. `repeats[0]`).
    pub fn parse(v: &Value, at: &str, errors: &mut Vec<FieldError>) -> Option<RepeatRule> {
        let Some(obj) = v.as_object() else {
            errors.push(FieldError::new(at, "must be a repeat rule object"));
            return None;
        };
        let before = errors.len();
        let frequency = match obj.get("frequency") {
            Some(Value::String(f)) => Frequency::parse(f),
            _ => None,
        };
        if frequency.is_none() {
            errors.push(FieldError::new(
                format!("{at}.frequency"),
                "is required and must be one of hourly, daily, weekly, monthly",
            ));
        }
        let int = |key: &str, lo: u32, hi: u32, errors: &mut Vec<FieldError>| -> Option<u32> {
            match obj.get(key) {
                None | Some(Value::Null) => None,
                Some(n) => match n.as_u64().and_then(|n| u32::try_from(n).ok()) {
                    Some(n) if (lo..=hi).contains(&n) => Some(n),
                    _ => {
                        errors.push(FieldError::new(
                            format!("{at}.{key}"),
                            format!("must be an integer from {lo} to {hi}"),
                        ));
                        None
                    }
                },
            }
        };
        let interval = int("interval", 1, MAX_INTERVAL, errors).unwrap_or(1);
        let hours = int("hours", 0, 23, errors);
        let minutes = int("minutes", 0, 59, errors);
        let day_of_month = int("day_of_month", 1, 31, errors);
        let days = match obj.get("days") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) if !items.is_empty() => {
                let mut days = Vec::new();
                for item in items {
                    match DAY_NAMES
                        .iter()
                        .find(|(name, _)| item.as_str() == Some(name))
                    {
                        Some((_, d)) => days.push(*d),
                        None => {
                            errors.push(FieldError::new(
                                format!("{at}.days"),
                                "must list days among mon, tue, wed, thu, fri, sat, sun",
                            ));
                            break;
                        }
                    }
                }
                days.sort_by_key(|d| d.num_days_from_monday());
                days.dedup();
                Some(days)
            }
            Some(_) => {
                errors.push(FieldError::new(
                    format!("{at}.days"),
                    "must be a non-empty list of days (mon … sun) or null",
                ));
                None
            }
        };
        if let Some(f) = frequency {
            let misplaced = match f {
                Frequency::Hourly => [
                    ("hours", hours.is_some()),
                    ("day_of_month", day_of_month.is_some()),
                ],
                Frequency::Daily | Frequency::Weekly => {
                    [("day_of_month", day_of_month.is_some()), ("", false)]
                }
                Frequency::Monthly => [("days", days.is_some()), ("", false)],
            };
            for (key, set) in misplaced {
                if set {
                    errors.push(FieldError::new(
                        format!("{at}.{key}"),
                        format!("does not apply to a {} rule; leave it null", f.as_str()),
                    ));
                }
            }
        }
        if errors.len() > before {
            return None;
        }
        Some(RepeatRule {
            frequency: frequency?,
            interval,
            days,
            hours,
            minutes,
            day_of_month,
        })
    }

    /// Knock's `ScheduleRepeat` shape.
    pub fn to_wire(&self) -> Value {
        json!({
            "__typename": "ScheduleRepeat",
            "frequency": self.frequency.as_str(),
            "interval": self.interval,
            "days": self.days.as_ref().map(|d| d.iter().map(|d| day_name(*d)).collect::<Vec<_>>()),
            "hours": self.hours,
            "minutes": self.minutes,
            "day_of_month": self.day_of_month,
        })
    }

    fn on_day(&self, day: Weekday) -> bool {
        self.days.as_ref().is_none_or(|days| days.contains(&day))
    }

    /// Whether `day` is an occurrence day (for hourly: a day that may hold occurrences).
    /// `start` and `day` are wall-clock values in the schedule's zone.
    fn day_matches(&self, start: NaiveDateTime, day: NaiveDate) -> bool {
        let first = start.date();
        let interval = i64::from(self.interval);
        match self.frequency {
            Frequency::Hourly => self.on_day(day.weekday()),
            Frequency::Daily => {
                (day - first).num_days().rem_euclid(interval) == 0 && self.on_day(day.weekday())
            }
            Frequency::Weekly => {
                let monday =
                    |d: NaiveDate| d - Days::new(u64::from(d.weekday().num_days_from_monday()));
                let weeks = (monday(day) - monday(first)).num_days() / 7;
                let weekday_ok = match &self.days {
                    Some(days) => days.contains(&day.weekday()),
                    None => day.weekday() == first.weekday(),
                };
                weeks.rem_euclid(interval) == 0 && weekday_ok
            }
            Frequency::Monthly => {
                let months = (i64::from(day.year()) - i64::from(first.year())) * 12
                    + i64::from(day.month())
                    - i64::from(first.month());
                let wanted = self.day_of_month.unwrap_or(first.day());
                months.rem_euclid(interval) == 0 && day.day() == wanted.min(days_in_month(day))
            }
        }
    }

    /// The wall-clock occurrence times of an occurrence day, ascending.
    fn times(&self, start: NaiveDateTime, day: NaiveDate) -> Vec<NaiveDateTime> {
        let minute = self.minutes.unwrap_or(start.minute());
        let at = |h: u32| day.and_hms_opt(h, minute, 0);
        match self.frequency {
            Frequency::Hourly => {
                let start_hour = start
                    .date()
                    .and_hms_opt(start.hour(), 0, 0)
                    .unwrap_or(start);
                (0..24)
                    .filter_map(at)
                    .filter(|t| {
                        let hours = (*t - start_hour).num_hours();
                        hours.rem_euclid(i64::from(self.interval)) == 0
                    })
                    .collect()
            }
            _ => at(self.hours.unwrap_or(start.hour())).into_iter().collect(),
        }
    }

    /// The rule's first occurrence at or after `t`, reading `start`'s wall clock and the
    /// rule's hours in `zone`.
    fn next_at_or_after(
        &self,
        zone: Tz,
        start: DateTime<Utc>,
        t: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let local_start = start.with_timezone(&zone).naive_local();
        // A day earlier: a wall-clock time skipped by a DST change is moved forward past
        // midnight at most, so it is found from the previous local day on.
        let mut day = t.with_timezone(&zone).date_naive().pred_opt()?;
        for _ in 0..SEARCH_DAYS {
            if self.day_matches(local_start, day)
                && let Some(found) = self
                    .times(local_start, day)
                    .into_iter()
                    .filter_map(|wall| resolve(zone, wall))
                    .find(|o| *o >= t)
            {
                return Some(found);
            }
            day = day.succ_opt()?;
        }
        None
    }
}

/// The instant a wall-clock time names in `zone`. An ambiguous time (the hour repeated
/// when clocks go back) is its first instance; a time skipped when clocks go forward is
/// read with the offset in force before the change, as a 02:30 alarm rings at 03:30 on
/// that night.
fn resolve(zone: Tz, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
    match zone.from_local_datetime(&wall) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.with_timezone(&Utc)),
        LocalResult::None => {
            let before = zone
                .from_local_datetime(&(wall - chrono::Duration::hours(3)))
                .earliest()?;
            let offset = i64::from(before.offset().fix().local_minus_utc());
            Some(Utc.from_utc_datetime(&(wall - chrono::Duration::seconds(offset))))
        }
    }
}

fn days_in_month(d: NaiveDate) -> u32 {
    let (y, m) = if d.month() == 12 {
        (d.year() + 1, 1)
    } else {
        (d.year(), d.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|first_of_next| first_of_next.pred_opt())
        .map_or(28, |last| last.day())
}

/// Parses `repeats` (null or absent = no rules).
pub fn parse_repeats(v: Option<&Value>, errors: &mut Vec<FieldError>) -> Vec<RepeatRule> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.len() > MAX_RULES => {
            errors.push(FieldError::new(
                "repeats",
                format!("may hold at most {MAX_RULES} rules (got {})", items.len()),
            ));
            Vec::new()
        }
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| RepeatRule::parse(item, &format!("repeats[{i}]"), errors))
            .collect(),
        Some(_) => {
            errors.push(FieldError::new("repeats", "must be a list of repeat rules"));
            Vec::new()
        }
    }
}

/// A schedule's timing.
#[derive(Debug, Clone, PartialEq)]
pub struct Recurrence {
    pub rules: Vec<RepeatRule>,
    /// `scheduled_at`, else when the schedule was created.
    pub start: DateTime<Utc>,
    /// Whether `start` is an explicit `scheduled_at` (a rule-less schedule needs one).
    pub explicit_start: bool,
    pub ending_at: Option<DateTime<Utc>>,
    /// The zone whose wall clock the rules' days, hours and minutes name: the recipient's
    /// `timezone` (as Knock documents for recurring schedules), else UTC.
    pub zone: Tz,
}

impl Recurrence {
    /// The first occurrence at or after `t` (and at or after `start`), if any remains.
    pub fn next_at_or_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let t = t.max(self.start);
        let next = if self.rules.is_empty() {
            // A one-off: its one occurrence is `start` (even when `t` is later, the caller
            // asks only before it fired).
            self.explicit_start.then_some(self.start)
        } else {
            self.rules
                .iter()
                .filter_map(|r| r.next_at_or_after(self.zone, self.start, t))
                .min()
        };
        next.filter(|o| self.ending_at.is_none_or(|end| *o <= end))
    }

    /// The first occurrence strictly after `t`; `None` for a one-off (it occurs once).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.rules.is_empty() {
            return None;
        }
        // Occurrences fall on whole minutes: the next one is at or after the next minute.
        let minute = t
            .with_second(0)
            .and_then(|x| x.with_nanosecond(0))
            .unwrap_or(t);
        self.next_at_or_after(minute + chrono::Duration::minutes(1))
    }

    /// The first occurrence when the schedule is created or updated at `now`: the first at
    /// or after `scheduled_at` that is not in the past (a past one-off is due at once).
    pub fn first(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.rules.is_empty() {
            return self.next_at_or_after(self.start);
        }
        self.next_at_or_after(now)
    }
}

#[cfg(test)]
#[path = "recurrence_tests.rs"]
mod tests;

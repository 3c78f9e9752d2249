//! Retention rules as an operator writes them: `DAYS` for every channel, `KEY=DAYS` for one
//! channel, comma-separated (`365,alerts=30`). Parsed once at start; no I/O.

use std::str::FromStr;

/// How long feed items (or archived items) are kept. A channel listed by key uses its own
/// number of days; every other channel uses `default` (kept forever when `None`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RetentionRule {
    pub default: Option<u32>,
    pub channels: Vec<(String, u32)>,
}

/// The longest retention accepted (100 years): beyond it the cutoff date overflows.
pub const MAX_RETENTION_DAYS: u32 = 36_500;

impl FromStr for RetentionRule {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let mut rule = RetentionRule::default();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (channel, days) = match part.split_once('=') {
                Some((channel, days)) => (Some(channel.trim()), days.trim()),
                None => (None, part),
            };
            let days = parse_days(days)?;
            match channel {
                None if rule.default.is_some() => {
                    return Err("give the all-channels number of days once".into());
                }
                None => rule.default = Some(days),
                Some("") => return Err(format!("`{part}`: the channel key is empty")),
                Some(key) if rule.channels.iter().any(|(k, _)| k == key) => {
                    return Err(format!("channel `{key}` is listed twice"));
                }
                Some(key) => rule.channels.push((key.to_owned(), days)),
            }
        }
        if rule.default.is_none() && rule.channels.is_empty() {
            return Err("expected DAYS or CHANNEL_KEY=DAYS (comma-separated)".into());
        }
        Ok(rule)
    }
}

/// A whole number of days, 1..=36500.
pub fn parse_days(raw: &str) -> Result<u32, String> {
    match raw.parse::<u32>() {
        Ok(days) if (1..=MAX_RETENTION_DAYS).contains(&days) => Ok(days),
        _ => Err(format!(
            "`{raw}` is not a number of days from 1 to {MAX_RETENTION_DAYS}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_and_per_channel_overrides_parse() {
        let rule: RetentionRule = "365, alerts=30,digest = 7".parse().expect("parses");
        assert_eq!(rule.default, Some(365));
        assert_eq!(
            rule.channels,
            [("alerts".to_owned(), 30), ("digest".to_owned(), 7)]
        );
        let only: RetentionRule = "alerts=30".parse().expect("parses");
        assert_eq!(only.default, None);
    }

    #[test]
    fn nonsense_is_refused_with_a_reason() {
        for bad in [
            "", "0", "-1", "abc", "36501", "30,60", "=5", "a=1,a=2", "a=", "a=x",
        ] {
            assert!(bad.parse::<RetentionRule>().is_err(), "{bad:?}");
        }
    }
}

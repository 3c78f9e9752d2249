//! Parsing a `batch` step (Knock's `WorkflowBatchStep.settings`) into a [`BatchStep`] that
//! can only hold what the engine executes: every limit is checked here, at load/upsert,
//! with the field named, so a bad window never reaches a run.

use serde_json::{Map, Value};

use super::steps::check_path;
use super::{Duration, Errors, PATH_ROOTS};

/// Knock's `batch_items_max_limit` range.
pub const MAX_ITEMS_RANGE: (u32, u32) = (2, 1000);
/// Knock's `batch_items_render_limit` range (100 is Knock's enterprise ceiling) and default.
pub const RENDER_LIMIT_RANGE: (u32, u32) = (1, 100);
pub const DEFAULT_RENDER_LIMIT: u32 = 10;
/// Longest `batch_key` path, and longest resolved key value the engine batches on.
pub const MAX_KEY_LEN: usize = 255;

/// How the window behaves as activities arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowType {
    /// Closes `batch_window` after it opened.
    Fixed,
    /// Each activity pushes the close to `batch_window` after it, up to
    /// `batch_window_extension_limit` after the open.
    Sliding,
}

/// Which end of the batch the rendered `activities` come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOrder {
    /// The first `batch_items_render_limit` activities, oldest first.
    Asc,
    /// The last `batch_items_render_limit` activities, newest first.
    Desc,
}

/// `batch_execution_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionMode {
    /// Every trigger becomes an activity; the opener's run continues at close.
    Accumulate,
    /// The trigger that opens the batch runs through at once and is not an activity;
    /// the rest accumulate and the first of them continues at close.
    FlushLeading,
}

/// A parsed `batch` step.
#[derive(Debug, Clone)]
pub struct BatchStep {
    /// A data path (`data.page_id`) whose value partitions the recipient's batches.
    pub key: Option<String>,
    /// The static window; `None` only when `until_field_path` is set.
    pub window: Option<Duration>,
    /// A path resolving (at open) to an ISO-8601 close time or a `{unit, value}` window.
    pub until_field_path: Option<String>,
    pub window_type: WindowType,
    /// Sliding windows: the latest close, measured from the open.
    pub extension_limit: Option<Duration>,
    /// Closes the batch as soon as it holds this many activities.
    pub max_items: Option<u32>,
    pub render_limit: u32,
    pub order: BatchOrder,
    pub mode: ExecutionMode,
}

/// An integer setting within `range` (absent/null = `None`).
fn bounded(
    settings: &Map<String, Value>,
    name: &str,
    range: (u32, u32),
    at: &str,
    errors: &mut Errors,
) -> Option<u32> {
    let v = settings.get(name)?;
    if v.is_null() {
        return None;
    }
    match v.as_u64() {
        Some(n) if (u64::from(range.0)..=u64::from(range.1)).contains(&n) => u32::try_from(n).ok(),
        _ => {
            errors.push(
                &format!("{at}.settings.{name}"),
                format!("must be a whole number from {} to {}", range.0, range.1),
            );
            None
        }
    }
}

/// One of `choices` (absent/null = the first).
fn choice<'a>(
    settings: &Map<String, Value>,
    name: &str,
    choices: &[&'a str],
    at: &str,
    errors: &mut Errors,
) -> &'a str {
    match settings.get(name) {
        None | Some(Value::Null) => choices[0],
        Some(Value::String(s)) if choices.contains(&s.as_str()) => choices
            .iter()
            .find(|c| **c == s)
            .copied()
            .unwrap_or(choices[0]),
        Some(_) => {
            let list: Vec<String> = choices.iter().map(|c| format!("`{c}`")).collect();
            errors.push(
                &format!("{at}.settings.{name}"),
                format!("must be one of {}", list.join(", ")),
            );
            choices[0]
        }
    }
}

fn duration(
    settings: &Map<String, Value>,
    name: &str,
    at: &str,
    errors: &mut Errors,
) -> Option<Duration> {
    match settings.get(name) {
        None | Some(Value::Null) => None,
        Some(v) => match Duration::parse(v) {
            Ok(d) => Some(d),
            Err(m) => {
                errors.push(&format!("{at}.settings.{name}"), m);
                None
            }
        },
    }
}

/// A path setting (absent/null = `None`). `batch_key` may also be a bare data property
/// (`page_id`), as Knock's docs write it; it means `data.page_id`.
fn path(
    settings: &Map<String, Value>,
    name: &str,
    bare_is_data: bool,
    at: &str,
    errors: &mut Errors,
) -> Option<String> {
    match settings.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => {
            // Knock also takes the key as Liquid; the one form that names a path,
            // `{{ data.page_id }}`, is that path. Any other Liquid is refused rather than
            // misread as a path (which would put every trigger in one batch).
            let p = p.trim();
            let p = p
                .strip_prefix("{{")
                .and_then(|rest| rest.strip_suffix("}}"))
                .map_or(p, str::trim);
            if p.contains(['{', '}', '%', '|', ' ']) {
                errors.push(
                    &format!("{at}.settings.{name}"),
                    "must be a path such as `data.page_id` (Liquid only as `{{ data.page_id }}`)",
                );
                return None;
            }
            let root = p.split('.').next().unwrap_or_default();
            let p = if bare_is_data && !p.is_empty() && !PATH_ROOTS.contains(&root) {
                format!("data.{p}")
            } else {
                p.to_owned()
            };
            match check_path(&p) {
                Ok(()) => Some(p),
                Err(m) => {
                    errors.push(&format!("{at}.settings.{name}"), m);
                    None
                }
            }
        }
        Some(_) => {
            errors.push(
                &format!("{at}.settings.{name}"),
                "must be a string path such as `data.page_id`",
            );
            None
        }
    }
}

/// Seconds a duration spans (months as 31 days), for comparing two settings.
fn span(d: &Duration) -> i64 {
    let t = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
    (d.after(t) - t).num_seconds()
}

/// Parses the `settings` of a `batch` step at `at` (e.g. `steps[0]`).
pub(super) fn parse_batch_step(
    settings: &Map<String, Value>,
    at: &str,
    errors: &mut Errors,
) -> Option<BatchStep> {
    let before = errors.list.len();
    let key = path(settings, "batch_key", true, at, errors);
    let window = duration(settings, "batch_window", at, errors);
    let until_field_path = path(settings, "batch_until_field_path", false, at, errors);
    let window_type = match choice(
        settings,
        "batch_window_type",
        &["fixed", "sliding"],
        at,
        errors,
    ) {
        "sliding" => WindowType::Sliding,
        _ => WindowType::Fixed,
    };
    let extension_limit = duration(settings, "batch_window_extension_limit", at, errors);
    let max_items = bounded(
        settings,
        "batch_items_max_limit",
        MAX_ITEMS_RANGE,
        at,
        errors,
    );
    let render_limit = bounded(
        settings,
        "batch_items_render_limit",
        RENDER_LIMIT_RANGE,
        at,
        errors,
    )
    .unwrap_or(DEFAULT_RENDER_LIMIT);
    let order = match choice(settings, "batch_order", &["asc", "desc"], at, errors) {
        "desc" => BatchOrder::Desc,
        _ => BatchOrder::Asc,
    };
    let mode = match choice(
        settings,
        "batch_execution_mode",
        &["accumulate", "flush_leading"],
        at,
        errors,
    ) {
        "flush_leading" => ExecutionMode::FlushLeading,
        _ => ExecutionMode::Accumulate,
    };
    // Both modes run on the current version (see README); accepted so pulled files load.
    choice(
        settings,
        "workflow_version_mode",
        &["latest", "pinned"],
        at,
        errors,
    );
    if errors.list.len() > before {
        return None;
    }
    if window.is_none() && until_field_path.is_none() {
        errors.push(
            &format!("{at}.settings.batch_window"),
            "is required (`{unit, value}`) unless `batch_until_field_path` is set",
        );
        return None;
    }
    if window_type == WindowType::Sliding {
        let Some(w) = window else {
            errors.push(
                &format!("{at}.settings.batch_window"),
                "a sliding window needs a static `batch_window` to slide by",
            );
            return None;
        };
        if let Some(limit) = &extension_limit
            && span(limit) < span(&w)
        {
            errors.push(
                &format!("{at}.settings.batch_window_extension_limit"),
                "must be at least the `batch_window`",
            );
            return None;
        }
    }
    Some(BatchStep {
        key,
        window,
        until_field_path,
        window_type,
        extension_limit,
        max_items,
        render_limit,
        order,
        mode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(settings: Value) -> Result<BatchStep, Vec<String>> {
        let mut errors = Errors {
            prefix: String::new(),
            list: Vec::new(),
        };
        let map = settings.as_object().cloned().unwrap_or_default();
        parse_batch_step(&map, "steps[0]", &mut errors)
            .ok_or_else(|| errors.list.iter().map(|e| e.field.clone()).collect())
    }

    #[test]
    fn a_full_knock_cli_batch_step_parses_with_knocks_defaults() {
        let b = parse(json!({"batch_key": "page_id", "batch_window": {"unit": "minutes", "value": 5},
                             "batch_window_type": "sliding",
                             "batch_window_extension_limit": {"unit": "hours", "value": 1},
                             "batch_items_max_limit": 50, "batch_order": "desc",
                             "batch_execution_mode": "flush_leading", "workflow_version_mode": "latest"}))
        .expect("parses");
        assert_eq!(b.key.as_deref(), Some("data.page_id"));
        assert_eq!(b.window_type, WindowType::Sliding);
        assert_eq!(b.max_items, Some(50));
        assert_eq!(b.render_limit, DEFAULT_RENDER_LIMIT);
        assert_eq!(b.order, BatchOrder::Desc);
        assert_eq!(b.mode, ExecutionMode::FlushLeading);
        let liquid = parse(json!({"batch_key": "{{ data.page_id }}",
                                  "batch_window": {"unit": "minutes", "value": 5}}))
        .expect("a Liquid path");
        assert_eq!(liquid.key.as_deref(), Some("data.page_id"));
        let d = parse(json!({"batch_until_field_path": "recipient.digest_at"})).expect("dynamic");
        assert!(d.window.is_none());
        assert_eq!(d.window_type, WindowType::Fixed);
    }

    #[test]
    fn impossible_windows_and_limits_are_refused_naming_the_field() {
        let w = |v: Value| json!({"batch_window": v});
        for (settings, field) in [
            (w(json!({"unit": "minutes", "value": 0})), "batch_window"),
            (w(json!({"unit": "minutes", "value": -5})), "batch_window"),
            (w(json!({"unit": "days", "value": 400})), "batch_window"),
            (json!({}), "batch_window"),
            (
                json!({"batch_window_type": "sliding", "batch_until_field_path": "data.at"}),
                "batch_window",
            ),
            (
                json!({"batch_window": {"unit": "hours", "value": 2}, "batch_window_type": "sliding",
                    "batch_window_extension_limit": {"unit": "hours", "value": 1}}),
                "batch_window_extension_limit",
            ),
            (
                json!({"batch_window": {"unit": "hours", "value": 2}, "batch_items_max_limit": 1}),
                "batch_items_max_limit",
            ),
            (
                json!({"batch_window": {"unit": "hours", "value": 2}, "batch_items_max_limit": 1001}),
                "batch_items_max_limit",
            ),
            (
                json!({"batch_window": {"unit": "hours", "value": 2}, "batch_items_render_limit": 0}),
                "batch_items_render_limit",
            ),
            (
                json!({"batch_window": {"unit": "hours", "value": 2}, "batch_items_render_limit": 101}),
                "batch_items_render_limit",
            ),
            (
                json!({"batch_window": {"unit": "hours", "value": 2}, "batch_order": "random"}),
                "batch_order",
            ),
            (
                json!({"batch_window": {"unit": "hours", "value": 2}, "batch_execution_mode": "x"}),
                "batch_execution_mode",
            ),
            (
                json!({"batch_window": {"unit": "hours", "value": 2}, "batch_window_type": "tumbling"}),
                "batch_window_type",
            ),
            (
                json!({"batch_window": {"unit": "hours", "value": 2}, "batch_key": 5}),
                "batch_key",
            ),
            (
                json!({"batch_window": {"unit": "hours", "value": 2}, "batch_key": "data..x"}),
                "batch_key",
            ),
            (
                json!({"batch_window": {"unit": "hours", "value": 2}, "batch_key": "{{ data.a | upcase }}"}),
                "batch_key",
            ),
            (
                json!({"batch_window": {"unit": "hours", "value": 2}, "batch_key": "{{ data.a }}-{{ data.b }}"}),
                "batch_key",
            ),
        ] {
            let fields = parse(settings.clone()).expect_err("refused");
            let want = format!("steps[0].settings.{field}");
            assert!(fields.contains(&want), "{settings}: {fields:?}");
        }
    }
}

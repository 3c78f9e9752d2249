//! Knock conditions (`{variable, operator, argument}`), evaluated against a run's scope
//! (`recipient`, `actor`, `data`, `tenant`, …). Used by preference settings with
//! `conditions`, and by workflow and step `conditions` as a [`ConditionGroup`]
//! (`{all: [...]}` or `{any: [condition | {all: [...]}]}`). Pure: no I/O.
//!
//! Operators beyond comparisons: `contains_all`/`not_contains_all` (every element of the
//! argument array), `is_between` (number within `[low, high]`, inclusive),
//! `is_timestamp`/`is_not_timestamp`, `is_timestamp_before`/`is_timestamp_on_or_after`
//! (against the argument timestamp), `is_timestamp_between` (`[from, to)`),
//! `is_timestamp_before_now`/`is_timestamp_on_or_after_now` (against the engine clock).
//! A string argument that is JSON (`"[1, 5]"`) is decoded, as Knock does. Audience
//! operators are refused: Tidings has no audiences.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// Operators Tidings evaluates. Anything else is refused when a condition is parsed, so a
/// stored condition can never silently mean "false".
pub const OPERATORS: &[&str] = &[
    "equal_to",
    "not_equal_to",
    "greater_than",
    "less_than",
    "greater_than_or_equal_to",
    "less_than_or_equal_to",
    "contains",
    "not_contains",
    "empty",
    "not_empty",
    "exists",
    "not_exists",
    "contains_all",
    "not_contains_all",
    "is_between",
    "is_timestamp",
    "is_not_timestamp",
    "is_timestamp_before",
    "is_timestamp_on_or_after",
    "is_timestamp_between",
    "is_timestamp_before_now",
    "is_timestamp_on_or_after_now",
];

/// Operators that take no `argument`.
const UNARY: &[&str] = &[
    "empty",
    "not_empty",
    "exists",
    "not_exists",
    "is_timestamp",
    "is_not_timestamp",
    "is_timestamp_before_now",
    "is_timestamp_on_or_after_now",
];

/// Operators whose argument is a pair `[low, high]`.
const RANGE: &[&str] = &["is_between", "is_timestamp_between"];

/// Checks one condition's shape; returns why it is unusable.
pub fn validate(condition: &Value) -> Result<(), String> {
    let Some(map) = condition.as_object() else {
        return Err("a condition must be an object".into());
    };
    match map.get("variable") {
        Some(Value::String(v)) if !v.is_empty() => {}
        _ => return Err("`variable` must be a non-empty string".into()),
    }
    match map.get("operator").and_then(Value::as_str) {
        Some(op) if OPERATORS.contains(&op) => Ok(()),
        Some(op) => Err(format!(
            "operator `{op}` is not supported; use one of {}",
            OPERATORS.join(", ")
        )),
        None => Err("`operator` must be a string".into()),
    }
}

/// A string argument holding JSON (`"[1, 2]"`, `"5"`) decoded; anything else as is.
fn decoded(argument: &Value) -> Value {
    match argument {
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(v @ (Value::Array(_) | Value::Number(_) | Value::Bool(_))) => v,
            _ => argument.clone(),
        },
        other => other.clone(),
    }
}

/// Checks a workflow or step condition: its shape, operator, argument, and that its
/// `variable` starts at one of `roots`.
pub fn validate_in(condition: &Value, roots: &[&str]) -> Result<(), String> {
    validate(condition)?;
    let variable = condition["variable"].as_str().unwrap_or_default();
    let root = variable.split('.').next().unwrap_or_default();
    if !roots.contains(&root) || variable.split('.').any(str::is_empty) {
        return Err(format!(
            "`variable` must be a path starting with one of {} (got `{variable}`)",
            roots.join(", ")
        ));
    }
    let operator = condition["operator"].as_str().unwrap_or_default();
    let argument = condition.get("argument").unwrap_or(&Value::Null);
    if RANGE.contains(&operator) {
        match decoded(argument) {
            Value::Array(pair) if pair.len() == 2 => {}
            _ => {
                return Err(format!(
                    "`{operator}` needs an `argument` pair `[from, to]`"
                ));
            }
        }
    } else if !UNARY.contains(&operator) && argument.is_null() {
        return Err(format!("`{operator}` needs an `argument`"));
    }
    Ok(())
}

/// A workflow or step `conditions` group, validated when the workflow is loaded. Keeps
/// the source JSON (what the definition stores and run events show).
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionGroup(pub Value);

impl ConditionGroup {
    /// Parses `{all: [...]}` / `{any: [...]}`; errors are `(field suffix, message)`.
    pub fn parse(v: &Value, roots: &[&str]) -> Result<ConditionGroup, (String, String)> {
        check_group(v, roots, true)?;
        Ok(ConditionGroup(v.clone()))
    }

    /// Whether the group holds in `scope` at `now`.
    pub fn holds(&self, scope: &Value, now: DateTime<Utc>) -> bool {
        group_holds(&self.0, scope, now)
    }
}

fn check_group(v: &Value, roots: &[&str], top: bool) -> Result<(), (String, String)> {
    let Some(map) = v.as_object() else {
        return Err((
            String::new(),
            "must be `{all: [...]}` or `{any: [...]}`".into(),
        ));
    };
    let (key, list) = match (map.get("all"), map.get("any")) {
        (Some(all), None) => ("all", all),
        (None, Some(any)) if top => ("any", any),
        _ => {
            let shape = if top {
                "`{all: [...]}` or `{any: [...]}`"
            } else {
                "`{all: [...]}`"
            };
            return Err((String::new(), format!("must be {shape}")));
        }
    };
    let Some(list) = list.as_array() else {
        return Err((format!(".{key}"), "must be a list of conditions".into()));
    };
    if list.is_empty() {
        return Err((format!(".{key}"), "must hold at least one condition".into()));
    }
    for (i, c) in list.iter().enumerate() {
        if key == "any" && c.get("all").is_some() {
            check_group(c, roots, false).map_err(|(f, m)| (format!(".any[{i}]{f}"), m))?;
        } else {
            validate_in(c, roots).map_err(|m| (format!(".{key}[{i}]"), m))?;
        }
    }
    Ok(())
}

fn group_holds(v: &Value, scope: &Value, now: DateTime<Utc>) -> bool {
    if let Some(all) = v.get("all").and_then(Value::as_array) {
        return all.iter().all(|c| evaluate_at(c, scope, now));
    }
    if let Some(any) = v.get("any").and_then(Value::as_array) {
        return any.iter().any(|c| {
            if c.get("all").is_some() {
                group_holds(c, scope, now)
            } else {
                evaluate_at(c, scope, now)
            }
        });
    }
    false
}

fn timestamp(v: Option<&Value>) -> Option<DateTime<Utc>> {
    v.and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Looks up a dotted path (`recipient.country`, `data.items.0`) in the scope.
pub fn lookup<'a>(scope: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(scope, |value, key| match value {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// The argument may itself be a variable reference such as `"data.threshold"`; Knock
/// resolves those. A literal that is not a path of the scope stays a literal.
fn resolve_argument<'a>(scope: &'a Value, argument: &'a Value) -> &'a Value {
    match argument {
        Value::String(s) if s.contains('.') => lookup(scope, s).unwrap_or(argument),
        other => other,
    }
}

fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A boolean, or the text `"true"`/`"false"` (trimmed, any case) that Knock's editor
/// writes for one.
fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// Equality with Knock's coercions: when exactly one side is text, a numeric text
/// equals the same number and `"true"`/`"false"` equals the boolean. Two texts, or two
/// values of one JSON type, compare as they are.
fn loosely_equal(a: &Value, b: &Value) -> bool {
    if a.is_string() == b.is_string() {
        return match (as_number(a), as_number(b)) {
            (Some(x), Some(y)) if !a.is_string() => x == y,
            _ => a == b,
        };
    }
    if a.is_boolean() || b.is_boolean() {
        return matches!((as_bool(a), as_bool(b)), (Some(x), Some(y)) if x == y);
    }
    match (as_number(a), as_number(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn is_empty(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        Some(_) => false,
    }
}

fn contains(haystack: Option<&Value>, needle: &Value) -> bool {
    match (haystack, needle) {
        (Some(Value::String(h)), Value::String(n)) => h.contains(n.as_str()),
        (Some(Value::Array(items)), n) => items.iter().any(|i| loosely_equal(i, n)),
        (Some(Value::Object(map)), Value::String(key)) => map.contains_key(key),
        _ => false,
    }
}

/// Evaluates one (already validated) condition with the engine clock reading `now` (for
/// the `*_now` operators; the caller reads its injectable clock); an invalid one is false.
pub fn evaluate_at(condition: &Value, scope: &Value, now: DateTime<Utc>) -> bool {
    let variable = condition
        .get("variable")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let operator = condition
        .get("operator")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let argument = resolve_argument(scope, condition.get("argument").unwrap_or(&Value::Null));
    let value = lookup(scope, variable);
    let compare = |f: fn(f64, f64) -> bool| match (value.and_then(as_number), as_number(argument)) {
        (Some(a), Some(b)) => f(a, b),
        _ => false,
    };
    match operator {
        "equal_to" => value.is_some_and(|v| loosely_equal(v, argument)),
        "not_equal_to" => !value.is_some_and(|v| loosely_equal(v, argument)),
        "greater_than" => compare(|a, b| a > b),
        "less_than" => compare(|a, b| a < b),
        "greater_than_or_equal_to" => compare(|a, b| a >= b),
        "less_than_or_equal_to" => compare(|a, b| a <= b),
        "contains" => contains(value, argument),
        "not_contains" => !contains(value, argument),
        "empty" => is_empty(value),
        "not_empty" => !is_empty(value),
        "exists" => value.is_some_and(|v| !v.is_null()),
        "not_exists" => value.is_none_or(Value::is_null),
        "contains_all" | "not_contains_all" => {
            let all = match decoded(argument) {
                Value::Array(items) => items.iter().all(|n| contains(value, n)),
                single => contains(value, &single),
            };
            all == (operator == "contains_all")
        }
        "is_between" => match (value.and_then(as_number), decoded(argument)) {
            (Some(v), Value::Array(pair)) if pair.len() == 2 => {
                let low = resolve_argument(scope, &pair[0]);
                let high = resolve_argument(scope, &pair[1]);
                matches!((as_number(low), as_number(high)), (Some(l), Some(h)) if l <= v && v <= h)
            }
            _ => false,
        },
        "is_timestamp" => timestamp(value).is_some(),
        "is_not_timestamp" => timestamp(value).is_none(),
        "is_timestamp_before" => {
            matches!((timestamp(value), timestamp(Some(argument))), (Some(v), Some(a)) if v < a)
        }
        "is_timestamp_on_or_after" => {
            matches!((timestamp(value), timestamp(Some(argument))), (Some(v), Some(a)) if v >= a)
        }
        "is_timestamp_between" => match (timestamp(value), decoded(argument)) {
            (Some(v), Value::Array(pair)) if pair.len() == 2 => {
                let from = timestamp(Some(resolve_argument(scope, &pair[0])));
                let to = timestamp(Some(resolve_argument(scope, &pair[1])));
                matches!((from, to), (Some(f), Some(t)) if f <= v && v < t)
            }
            _ => false,
        },
        "is_timestamp_before_now" => timestamp(value).is_some_and(|v| v < now),
        "is_timestamp_on_or_after_now" => timestamp(value).is_some_and(|v| v >= now),
        _ => false,
    }
}

/// All conditions must hold at `now` (Knock's `conditions: [...]` list semantics).
pub fn all_hold(conditions: &[Value], scope: &Value, now: DateTime<Utc>) -> bool {
    conditions.iter().all(|c| evaluate_at(c, scope, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cond(variable: &str, operator: &str, argument: Value) -> Value {
        json!({"variable": variable, "operator": operator, "argument": argument})
    }

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
            .expect("now")
            .with_timezone(&Utc)
    }

    fn evaluate(condition: &Value, scope: &Value) -> bool {
        evaluate_at(condition, scope, at())
    }

    /// The scope the coercion tests read: booleans, numbers and texts of each.
    fn typed_scope() -> Value {
        json!({"recipient": {"wants_low": true, "muted": false, "age": 30, "ratio": 0.5,
                             "flag_text": "true", "age_text": "30",
                             "flags": [true, false], "ages": [30, 40], "only_true": [true]}})
    }

    #[test]
    fn equal_to_treats_boolean_and_numeric_texts_as_booleans_and_numbers() {
        let scope = typed_scope();
        for (variable, argument, holds) in [
            ("recipient.wants_low", json!("true"), true),
            ("recipient.wants_low", json!(" TRUE "), true),
            ("recipient.wants_low", json!("false"), false),
            ("recipient.muted", json!("false"), true),
            ("recipient.muted", json!("true"), false),
            ("recipient.wants_low", json!(true), true),
            ("recipient.flag_text", json!(true), true),
            ("recipient.flag_text", json!("true"), true),
            ("recipient.wants_low", json!("yes"), false),
            ("recipient.wants_low", json!(1), false),
            // Numeric texts equal numbers, as before; two texts compare as texts.
            ("recipient.age", json!("30"), true),
            ("recipient.age", json!(" 30.0 "), true),
            ("recipient.age", json!("31"), false),
            ("recipient.ratio", json!("0.5"), true),
            ("recipient.age_text", json!(30), true),
            ("recipient.age_text", json!("30.0"), false),
        ] {
            assert_eq!(
                evaluate(&cond(variable, "equal_to", argument.clone()), &scope),
                holds,
                "{variable} equal_to {argument}"
            );
            assert_eq!(
                evaluate(&cond(variable, "not_equal_to", argument.clone()), &scope),
                !holds,
                "{variable} not_equal_to {argument}"
            );
        }
    }

    #[test]
    fn contains_coerces_texts_against_list_elements() {
        let scope = typed_scope();
        for (variable, argument, holds) in [
            ("recipient.flags", json!("true"), true),
            ("recipient.only_true", json!("false"), false),
            ("recipient.only_true", json!("true"), true),
            ("recipient.ages", json!("40"), true),
            ("recipient.ages", json!("41"), false),
        ] {
            assert_eq!(
                evaluate(&cond(variable, "contains", argument.clone()), &scope),
                holds,
                "{variable} contains {argument}"
            );
            assert_eq!(
                evaluate(&cond(variable, "not_contains", argument.clone()), &scope),
                !holds,
                "{variable} not_contains {argument}"
            );
        }
    }

    #[test]
    fn contains_all_coerces_each_element_of_the_argument() {
        let scope = typed_scope();
        for (variable, argument, holds) in [
            ("recipient.flags", json!(["true", "false"]), true),
            ("recipient.only_true", json!(["true", "false"]), false),
            ("recipient.ages", json!(["30", "40"]), true),
            ("recipient.ages", json!(["30", "50"]), false),
        ] {
            assert_eq!(
                evaluate(&cond(variable, "contains_all", argument.clone()), &scope),
                holds,
                "{variable} contains_all {argument}"
            );
            assert_eq!(
                evaluate(
                    &cond(variable, "not_contains_all", argument.clone()),
                    &scope
                ),
                !holds,
                "{variable} not_contains_all {argument}"
            );
        }
    }

    #[test]
    fn operators_compare_scope_values() {
        let scope = json!({"recipient": {"country": "US", "age": 30, "tags": ["a", "b"]}, "data": {"limit": 25}});
        assert!(evaluate(
            &cond("recipient.country", "equal_to", json!("US")),
            &scope
        ));
        assert!(!evaluate(
            &cond("recipient.country", "equal_to", json!("FR")),
            &scope
        ));
        assert!(evaluate(
            &cond("recipient.age", "greater_than", json!(18)),
            &scope
        ));
        assert!(evaluate(
            &cond("recipient.age", "greater_than", json!("data.limit")),
            &scope
        ));
        assert!(evaluate(
            &cond("recipient.tags", "contains", json!("b")),
            &scope
        ));
        assert!(evaluate(
            &cond("recipient.missing", "not_exists", Value::Null),
            &scope
        ));
        assert!(evaluate(
            &cond("recipient.missing", "empty", Value::Null),
            &scope
        ));
        assert!(!evaluate(
            &cond("recipient.country", "unknown_op", json!(1)),
            &scope
        ));
    }

    #[test]
    fn every_operator_of_the_spec_evaluates() {
        let now = at();
        let scope = json!({"data": {"tags": ["a", "b", "c"], "n": 5, "at": "2026-02-01T00:00:00Z",
                                    "later": "2026-04-01T00:00:00Z", "word": "x"}});
        let yes = [
            cond("data.tags", "contains_all", json!(["a", "c"])),
            cond("data.tags", "contains_all", json!("[\"a\", \"b\"]")),
            cond("data.tags", "not_contains_all", json!(["a", "z"])),
            cond("data.n", "is_between", json!([1, 5])),
            cond("data.n", "is_between", json!("[5, 9]")),
            cond("data.at", "is_timestamp", Value::Null),
            cond("data.word", "is_not_timestamp", Value::Null),
            cond(
                "data.at",
                "is_timestamp_before",
                json!("2026-02-02T00:00:00Z"),
            ),
            cond(
                "data.at",
                "is_timestamp_on_or_after",
                json!("2026-02-01T00:00:00Z"),
            ),
            cond(
                "data.at",
                "is_timestamp_between",
                json!(["2026-01-01T00:00:00Z", "2026-03-01T00:00:00Z"]),
            ),
            cond("data.at", "is_timestamp_before_now", Value::Null),
            cond("data.later", "is_timestamp_on_or_after_now", Value::Null),
        ];
        for c in &yes {
            assert!(evaluate_at(c, &scope, now), "{c} should hold");
        }
        let no = [
            cond("data.tags", "contains_all", json!(["a", "z"])),
            cond("data.n", "is_between", json!([6, 9])),
            cond("data.word", "is_timestamp", Value::Null),
            cond("data.later", "is_timestamp_before_now", Value::Null),
            cond(
                "data.at",
                "is_timestamp_between",
                json!(["2026-02-01T00:00:01Z", "2026-03-01T00:00:00Z"]),
            ),
        ];
        for c in &no {
            assert!(!evaluate_at(c, &scope, now), "{c} should not hold");
        }
    }

    #[test]
    fn groups_parse_with_roots_and_arguments_checked() {
        let roots = ["data", "recipient"];
        let ok = json!({"any": [{"variable": "data.a", "operator": "exists"},
                                {"all": [{"variable": "recipient.b", "operator": "equal_to", "argument": 1}]}]});
        let g = ConditionGroup::parse(&ok, &roots).expect("valid");
        assert!(g.holds(&json!({"data": {"a": 1}}), at()));
        assert!(!g.holds(&json!({"recipient": {"b": 2}}), at()));
        for (bad, field) in [
            (
                json!({"all": [{"variable": "payload.a", "operator": "exists"}]}),
                ".all[0]",
            ),
            (
                json!({"all": [{"variable": "data.a", "operator": "is_audience_member", "argument": "x"}]}),
                ".all[0]",
            ),
            (
                json!({"all": [{"variable": "data.a", "operator": "equal_to"}]}),
                ".all[0]",
            ),
            (
                json!({"all": [{"variable": "data.a", "operator": "is_between", "argument": 3}]}),
                ".all[0]",
            ),
            (
                json!({"any": [{"all": [{"variable": "x", "operator": "exists"}]}]}),
                ".any[0].all[0]",
            ),
            (json!({"all": []}), ".all"),
            (json!({"none": []}), ""),
        ] {
            let err = ConditionGroup::parse(&bad, &roots).expect_err("refused");
            assert_eq!(err.0, field, "{bad}: {err:?}");
        }
    }

    #[test]
    fn validation_refuses_unknown_operators() {
        assert!(validate(&cond("a", "equal_to", json!(1))).is_ok());
        assert!(validate(&cond("a", "is_audience_member", json!(1))).is_err());
        assert!(validate(&json!({"operator": "equal_to"})).is_err());
    }
}

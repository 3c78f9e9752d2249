//! Knock conditions (`{variable, operator, argument}`), evaluated against a run's scope
//! (`recipient`, `actor`, `data`, `tenant`, …). Used by preference settings with
//! `conditions`. Pure: no I/O.

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
];

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

fn loosely_equal(a: &Value, b: &Value) -> bool {
    match (as_number(a), as_number(b)) {
        (Some(x), Some(y)) if !a.is_string() || !b.is_string() => x == y,
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

/// Evaluates one (already validated) condition; an invalid one is false.
pub fn evaluate(condition: &Value, scope: &Value) -> bool {
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
        _ => false,
    }
}

/// All conditions must hold (Knock's `conditions: [...]` list semantics).
pub fn all_hold(conditions: &[Value], scope: &Value) -> bool {
    conditions.iter().all(|c| evaluate(c, scope))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cond(variable: &str, operator: &str, argument: Value) -> Value {
        json!({"variable": variable, "operator": operator, "argument": argument})
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
    fn validation_refuses_unknown_operators() {
        assert!(validate(&cond("a", "equal_to", json!(1))).is_ok());
        assert!(validate(&cond("a", "is_audience_member", json!(1))).is_err());
        assert!(validate(&json!({"operator": "equal_to"})).is_err());
    }
}

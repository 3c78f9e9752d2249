//! Parsing workflow steps: `channel` (in-app feed), `delay`, `batch`, `throttle` and
//! `branch`; every other step type or unimplemented step feature is refused by name.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::{
    Branch, ButtonSource, CONDITION_ROOTS, DelayStep, Duration, Errors, InAppFeedStep,
    InAppTemplateSource, PATH_ROOTS, Step, StepKind, ThrottleStep, is_absent,
};
use crate::model::conditions::ConditionGroup;

/// Knock's in-app templates have a primary and a secondary button at most.
const MAX_BUTTONS: usize = 2;

/// Deepest nesting of branch steps inside branch steps.
const MAX_BRANCH_DEPTH: usize = 5;
/// Most branches in one branch step.
const MAX_BRANCHES: usize = 20;

pub(super) fn parse_steps(steps: &[Value], errors: &mut Errors) -> Vec<Step> {
    let mut refs = HashSet::new();
    parse_steps_at(steps, "steps", &mut refs, 0, errors)
}

/// Parses a `conditions` group (absent/null = none) reporting errors under `field`.
pub(super) fn parse_conditions(
    v: Option<&Value>,
    field: &str,
    errors: &mut Errors,
) -> Option<ConditionGroup> {
    match v {
        None | Some(Value::Null) => None,
        Some(v) => match ConditionGroup::parse(v, CONDITION_ROOTS) {
            Ok(g) => Some(g),
            Err((suffix, message)) => {
                errors.push(&format!("{field}{suffix}"), message);
                None
            }
        },
    }
}

fn parse_steps_at(
    steps: &[Value],
    prefix: &str,
    refs: &mut HashSet<String>,
    depth: usize,
    errors: &mut Errors,
) -> Vec<Step> {
    let mut out = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let at = format!("{prefix}[{i}]");
        let Some(s) = step.as_object() else {
            errors.push(&at, "must be a step object");
            continue;
        };
        let step_ref = match s.get("ref") {
            Some(Value::String(r)) if !r.is_empty() && r.len() <= 255 => {
                if !refs.insert(r.clone()) {
                    errors.push(
                        &format!("{at}.ref"),
                        format!("`{r}` is used by another step"),
                    );
                }
                r.clone()
            }
            _ => {
                errors.push(
                    &format!("{at}.ref"),
                    "is required: a unique string per workflow",
                );
                String::new()
            }
        };
        let conditions = parse_conditions(s.get("conditions"), &format!("{at}.conditions"), errors);
        let kind = match s.get("type").and_then(Value::as_str) {
            Some("channel") => {
                parse_channel_step(s, step_ref.clone(), &at, errors).map(StepKind::InAppFeed)
            }
            Some("delay") => parse_delay_step(s, &at, errors).map(StepKind::Delay),
            Some("throttle") => parse_throttle_step(s, &at, errors).map(StepKind::Throttle),
            Some("branch") => parse_branch_step(s, &at, refs, depth, errors).map(StepKind::Branch),
            Some("batch") => settings(s, &at, errors)
                .and_then(|settings| super::batch::parse_batch_step(settings, &at, errors))
                .map(StepKind::Batch),
            Some(kind) => {
                errors.push(
                    &format!("{at}.type"),
                    format!("step type `{kind}` is not supported by Tidings (channel/in_app_feed, delay, batch, throttle, branch)"),
                );
                None
            }
            None => {
                errors.push(&format!("{at}.type"), "is required");
                None
            }
        };
        if let Some(kind) = kind {
            out.push(Step {
                step_ref,
                conditions,
                kind,
            });
        }
    }
    out
}

fn parse_throttle_step(
    s: &Map<String, Value>,
    at: &str,
    errors: &mut Errors,
) -> Option<ThrottleStep> {
    let settings = settings(s, at, errors)?;
    let before = errors.list.len();
    let field = |name: &str| format!("{at}.settings.{name}");
    let key = match settings.get("throttle_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => match check_path(p) {
            Ok(()) => Some(p.clone()),
            Err(m) => {
                errors.push(&field("throttle_key"), m);
                None
            }
        },
        Some(_) => {
            errors.push(
                &field("throttle_key"),
                "must be a string path such as `data.project_id`",
            );
            None
        }
    };
    let limit = match settings.get("throttle_limit") {
        None | Some(Value::Null) => 1,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(l @ 1..=10_000) => l as u32,
            _ => {
                errors.push(
                    &field("throttle_limit"),
                    "must be a whole number from 1 to 10000",
                );
                1
            }
        },
        Some(_) => {
            errors.push(
                &field("throttle_limit"),
                "must be a whole number from 1 to 10000",
            );
            1
        }
    };
    if !is_absent(settings.get("throttle_window_field_path")) {
        errors.push(
            &field("throttle_window_field_path"),
            "dynamic throttle windows are not implemented in Tidings yet; use `throttle_window`",
        );
    }
    let window = match settings.get("throttle_window") {
        Some(v) if !v.is_null() => match Duration::parse(v) {
            Ok(d) => Some(d),
            Err(m) => {
                errors.push(&field("throttle_window"), m);
                None
            }
        },
        _ => {
            errors.push(&field("throttle_window"), "is required: `{unit, value}`");
            None
        }
    };
    if errors.list.len() > before {
        return None;
    }
    Some(ThrottleStep {
        key,
        limit,
        window: window?,
    })
}

fn parse_branch_step(
    s: &Map<String, Value>,
    at: &str,
    refs: &mut HashSet<String>,
    depth: usize,
    errors: &mut Errors,
) -> Option<Vec<Branch>> {
    if depth >= MAX_BRANCH_DEPTH {
        errors.push(
            &format!("{at}.branches"),
            format!("branches may nest at most {MAX_BRANCH_DEPTH} deep"),
        );
        return None;
    }
    let Some(list) = s.get("branches").and_then(Value::as_array) else {
        errors.push(&format!("{at}.branches"), "is required: a list of branches");
        return None;
    };
    if list.is_empty() || list.len() > MAX_BRANCHES {
        errors.push(
            &format!("{at}.branches"),
            format!("must hold 1 to {MAX_BRANCHES} branches, the last one the default"),
        );
        return None;
    }
    let before = errors.list.len();
    let mut out = Vec::new();
    for (b, branch) in list.iter().enumerate() {
        let bat = format!("{at}.branches[{b}]");
        let Some(obj) = branch.as_object() else {
            errors.push(
                &bat,
                "must be an object `{name, conditions, steps, terminates}`",
            );
            continue;
        };
        let name = match obj.get("name") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(n)) => n.clone(),
            Some(_) => {
                errors.push(&format!("{bat}.name"), "must be a string");
                String::new()
            }
        };
        let conditions =
            parse_conditions(obj.get("conditions"), &format!("{bat}.conditions"), errors);
        let is_last = b + 1 == list.len();
        if is_last && !is_absent(obj.get("conditions")) {
            errors.push(
                &format!("{bat}.conditions"),
                "the last branch is the required default branch: it must have no conditions",
            );
        }
        if !is_last && is_absent(obj.get("conditions")) {
            errors.push(
                &format!("{bat}.conditions"),
                "only the last branch (the default) may be without conditions",
            );
        }
        let terminates = match obj.get("terminates") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(t)) => *t,
            Some(_) => {
                errors.push(&format!("{bat}.terminates"), "must be a boolean");
                false
            }
        };
        let steps = match obj.get("steps") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(steps)) => {
                parse_steps_at(steps, &format!("{bat}.steps"), refs, depth + 1, errors)
            }
            Some(_) => {
                errors.push(&format!("{bat}.steps"), "must be a list of steps");
                Vec::new()
            }
        };
        out.push(Branch {
            name,
            conditions,
            steps,
            terminates,
        });
    }
    if errors.list.len() > before {
        return None;
    }
    Some(out)
}

/// Checks a data path such as `data.remind_at` or `recipient.trial_ends_at`: dotted,
/// non-empty segments, starting at one of [`PATH_ROOTS`].
pub(super) fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() || path.len() > 255 || path.split('.').any(str::is_empty) {
        return Err("must be a dotted path such as `data.remind_at`".into());
    }
    let root = path.split('.').next().unwrap_or_default();
    if !PATH_ROOTS.contains(&root) {
        return Err(format!(
            "must start with one of {} (got `{root}`)",
            PATH_ROOTS.join(", ")
        ));
    }
    Ok(())
}

/// The `settings` object of a function step (required).
fn settings<'a>(
    s: &'a Map<String, Value>,
    at: &str,
    errors: &mut Errors,
) -> Option<&'a Map<String, Value>> {
    match s.get("settings") {
        Some(Value::Object(settings)) => Some(settings),
        _ => {
            errors.push(&format!("{at}.settings"), "is required: an object");
            None
        }
    }
}

fn parse_delay_step(s: &Map<String, Value>, at: &str, errors: &mut Errors) -> Option<DelayStep> {
    let settings = settings(s, at, errors)?;
    let before = errors.list.len();
    let delay_for = match settings.get("delay_for") {
        None | Some(Value::Null) => None,
        Some(v) => match Duration::parse(v) {
            Ok(d) => Some(d),
            Err(m) => {
                errors.push(&format!("{at}.settings.delay_for"), m);
                None
            }
        },
    };
    let delay_until_field_path = match settings.get("delay_until_field_path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => match check_path(p) {
            Ok(()) => Some(p.clone()),
            Err(m) => {
                errors.push(&format!("{at}.settings.delay_until_field_path"), m);
                None
            }
        },
        Some(_) => {
            errors.push(
                &format!("{at}.settings.delay_until_field_path"),
                "must be a string path",
            );
            None
        }
    };
    if errors.list.len() > before {
        return None;
    }
    if delay_for.is_none() && delay_until_field_path.is_none() {
        errors.push(
            &format!("{at}.settings"),
            "needs `delay_for`, `delay_until_field_path`, or both",
        );
        return None;
    }
    Some(DelayStep {
        delay_for,
        delay_until_field_path,
    })
}

fn parse_channel_step(
    s: &Map<String, Value>,
    step_ref: String,
    at: &str,
    errors: &mut Errors,
) -> Option<InAppFeedStep> {
    let before = errors.list.len();
    match s.get("channel_type") {
        // Tidings' channel registry only holds in-app feed channels, so a step without a
        // type (as in Knock's `WorkflowRequest` example) is an in-app step.
        None | Some(Value::Null) => {}
        Some(Value::String(t)) if t == "in_app_feed" => {}
        Some(Value::String(t)) => errors.push(
            &format!("{at}.channel_type"),
            format!("channel type `{t}` is not supported by Tidings (only `in_app_feed`)"),
        ),
        Some(_) => errors.push(&format!("{at}.channel_type"), "must be a string"),
    }
    if !is_absent(s.get("channel_group_key")) {
        errors.push(
            &format!("{at}.channel_group_key"),
            "channel groups are not supported by Tidings; use `channel_key`",
        );
    }
    match s.get("send_windows") {
        None | Some(Value::Null) => {}
        Some(Value::Array(w)) if w.is_empty() => {}
        Some(_) => errors.push(
            &format!("{at}.send_windows"),
            "send windows are not implemented in Tidings yet; remove them",
        ),
    }
    let channel_key = match s.get("channel_key") {
        Some(Value::String(k)) if !k.is_empty() && k.len() <= 255 => k.clone(),
        _ => {
            errors.push(
                &format!("{at}.channel_key"),
                "is required: the in-app channel's key",
            );
            String::new()
        }
    };
    let template = parse_template(s.get("template"), &format!("{at}.template"), errors);
    let lifecycle = super::lifecycle::parse(s, at, errors);
    if errors.list.len() > before {
        return None;
    }
    Some(InAppFeedStep {
        step_ref,
        channel_key,
        template: template?,
        lifecycle,
    })
}

fn parse_template(v: Option<&Value>, at: &str, errors: &mut Errors) -> Option<InAppTemplateSource> {
    let Some(t) = v.and_then(Value::as_object) else {
        errors.push(at, "is required: an object with `markdown_body`");
        return None;
    };
    let markdown_body = match t.get("markdown_body") {
        Some(Value::String(b)) => b.clone(),
        _ => {
            errors.push(
                &format!("{at}.markdown_body"),
                "is required and must be a string",
            );
            String::new()
        }
    };
    let action_url = match t.get("action_url") {
        None | Some(Value::Null) => None,
        Some(Value::String(u)) => Some(u.clone()),
        Some(_) => {
            errors.push(&format!("{at}.action_url"), "must be a string");
            None
        }
    };
    let mut action_buttons = Vec::new();
    match t.get("action_buttons") {
        None | Some(Value::Null) => {}
        Some(Value::Array(buttons)) if buttons.len() <= MAX_BUTTONS => {
            for (i, b) in buttons.iter().enumerate() {
                let field = |name: &str| b.get(name).and_then(Value::as_str).map(str::to_owned);
                match (field("label"), field("action")) {
                    (Some(label), Some(action)) => {
                        action_buttons.push(ButtonSource { label, action })
                    }
                    _ => errors.push(
                        &format!("{at}.action_buttons[{i}]"),
                        "must be an object with string `label` and `action`",
                    ),
                }
            }
        }
        Some(Value::Array(_)) => errors.push(
            &format!("{at}.action_buttons"),
            format!("may hold at most {MAX_BUTTONS} buttons (primary and secondary)"),
        ),
        Some(_) => errors.push(&format!("{at}.action_buttons"), "must be an array"),
    }
    Some(InAppTemplateSource {
        markdown_body,
        action_url,
        action_buttons,
    })
}

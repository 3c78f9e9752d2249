//! `--walk N`: the runner's CPU work per recipient outside the database — the walk of
//! the benchmark's workflow (preferences, ids, the Liquid → markdown → sanitized HTML
//! render, the message) and `waits::prepare` (serializing what the write stores) — on one
//! thread, over N recipients shaped like the throughput rounds' (identified users with a
//! name, the same trigger data and actor). No I/O, so the figure moves far less with the
//! machine's load than a whole round: what to read when tuning the walk.

use std::time::Instant;

use serde_json::{Value, json};
use tidings::engine::registry::Registry;
use tidings::engine::waits;
use tidings::engine::walk::{RecipientContext, RunContext, StepPosition, walk};
use tidings::model::RecipientRef;
use tidings::store::Store;

/// Microseconds per recipient, median of `rounds` passes over `recipients` recipients.
pub async fn report(recipients: usize, rounds: usize, workflow: &Value) -> Result<Value, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let store = Store::open(&dir.path().join("walk.db"), true).map_err(|e| e.to_string())?;
    let registry = Registry::new(store);
    let compiled = registry
        .upsert("bench", workflow, "workflow")
        .await
        .map_err(|e| format!("workflow: {e:?}"))?;
    let body = super::tidings::trigger_body(0);
    let data = body["data"].as_object().cloned().unwrap_or_default();
    let (mut walk_us, mut prepare_us) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let run = RunContext::new(
            tidings::ids::uuid(),
            compiled.clone(),
            None,
            Some(RecipientRef::User("bench-actor".into())),
            data.clone(),
            Some(json!({"__typename": "User", "id": "bench-actor", "name": "Ada"})),
            None,
        );
        let contexts: Vec<RecipientContext> = (0..recipients)
            .map(|i| {
                let id = super::tidings::recipient(0, i % super::tidings::RECIPIENTS);
                RecipientContext {
                    entity: Some(
                        json!({"__typename": "User", "id": id, "name": format!("User {i}"),
                        "email": null, "phone_number": null, "avatar": null, "timezone": null,
                        "created_at": null, "updated_at": "2026-11-30T10:00:00.000000Z"}),
                    ),
                    reference: RecipientRef::User(id),
                    preferences: json!({}),
                    trigger_data: None,
                    subscription: None,
                    batch: None,
                }
            })
            .collect();
        let started = Instant::now();
        let plans: Vec<_> = contexts
            .iter()
            .map(|r| walk(&run, r, &StepPosition::start()))
            .collect();
        walk_us.push(started.elapsed().as_secs_f64() * 1e6 / recipients as f64);
        let started = Instant::now();
        let prepared = plans
            .into_iter()
            .map(|plan| waits::prepare(plan, &run.run_id, run.started_ms))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        prepare_us.push(started.elapsed().as_secs_f64() * 1e6 / recipients as f64);
        drop(prepared);
    }
    Ok(json!({
        "recipients": recipients,
        "rounds": rounds,
        "walk_us_per_recipient": walk_us,
        "walk_us_per_recipient_median": super::median(&walk_us),
        "prepare_us_per_recipient": prepare_us,
        "prepare_us_per_recipient_median": super::median(&prepare_us),
    }))
}

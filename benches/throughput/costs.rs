//! What each row and index costs per feed item on the writer (`--costs`): Tidings' own
//! page write (`Store::write_run_page`, the op the runner calls) through the real writer
//! thread, pages of 1,000 items with `synchronous=FULL`, on a fresh database per variant.
//! `all rows` writes each recipient as a decided entry (`PageEntry::Decided`: its
//! recipient-run row, then its message serialized in the write); `without the
//! recipient-run row` writes the runner's plain delivery (`PageEntry::Plain`: the message
//! stamped and serialized before the write, its INSERT only). Each other variant removes
//! one index (dropped through a side connection), so the difference to `all` is what that
//! index costs. Every page also sets the run's audience cursor, as the runner's does (one
//! UPDATE per 1,000 items). The badge counters are not written by an insert since issue
//! 18: the fold (`store::fold`, the writer's bulk lane in the background) adds them up,
//! and is timed on its own after the inserts ("fold"), so `all + fold` is the writer's
//! whole work per item. Rendering, reads and HTTP are not in these figures: the
//! `throughput` rounds measure the whole path. SQLite only (the indexes are dropped
//! through rusqlite).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use tidings::model::RecipientRef;
use tidings::model::run_state::RecipientRunStatus;
use tidings::store::messages::{MessageData, NewMessage};
use tidings::store::ops::{AcceptTrigger, PageCursor, PageEntry, RecipientWrite};
use tidings::store::runs::NewRun;
use tidings::store::{Store, StoreError, StoreResult};

const PER_TX: usize = 1000;
const RUN: &str = "00000000-0000-4000-8000-000000000001";
/// The run of the untimed first delivery of a `repeat` variant.
const WARM_RUN: &str = "00000000-0000-4000-8000-000000000002";

/// One way of writing an item: which rows, and which indexes dropped first.
struct Variant {
    name: &'static str,
    recipient_run: bool,
    /// The same recipients delivered to once before, untimed: their feeds exist.
    repeat: bool,
    drop: &'static [&'static str],
}

/// Every index on the hot tables that a variant may drop, with the table it belongs to.
const INDEXES: &[&str] = &[
    "messages_feed",
    "messages_run",
    "messages_inserted_at",
    "workflow_recipient_runs_recipient",
    "workflow_recipient_runs_workflow",
    "workflow_recipient_runs_tenant",
    "workflow_recipient_runs_status",
    "workflow_recipient_runs_inserted",
];

fn variants() -> Vec<Variant> {
    let mut all = vec![
        Variant {
            name: "all rows, all indexes",
            recipient_run: true,
            repeat: false,
            drop: &[],
        },
        Variant {
            name: "all, repeat delivery",
            recipient_run: true,
            repeat: true,
            drop: &[],
        },
        Variant {
            name: "without the recipient-run row",
            recipient_run: false,
            repeat: false,
            drop: &[],
        },
    ];
    for index in INDEXES {
        all.push(Variant {
            name: index,
            recipient_run: true,
            repeat: false,
            drop: std::slice::from_ref(index),
        });
    }
    all
}

fn message(i: usize) -> NewMessage {
    NewMessage {
        id: tidings::ids::message_id(),
        channel_id: "6f1c2a5e-9a43-4c1e-8d1b-2b7f4c7e0a11".into(),
        recipient: RecipientRef::User(super::tidings::recipient(i / 1000, i % 1000)),
        tenant: None,
        workflow_key: "bench".into(),
        workflow_version_id: "7d2b5f9e-1c3a-4b6d-8e0f-112233445566".into(),
        workflow_categories: Vec::new(),
        workflow_run_id: RUN.into(),
        workflow_recipient_run_id: String::new(),
        step_ref: "in_app_feed_1".into(),
        actors: vec![RecipientRef::User("bench-actor".into())],
        data: MessageData::Run(Arc::new(json!({}))),
        blocks: json!([{"type": "markdown", "name": "body",
            "content": "Hi {{ recipient.name }}: **{{ actor.name }}** commented on {{ data.page }}",
            "rendered": format!("<p>Hi User {}: <strong>Ada</strong> commented on Quarterly report</p>", i % 1000)}])
        .into(),
        inserted_at: tidings::clock::Clock::system().now(),
        batch: None,
        expires_at: None,
        pinned_at: None,
    }
}

/// Microseconds per item: wall clock, and CPU of the whole process. On a shared machine
/// the CPU figure is the one to read: it does not grow while other processes hold the cores.
type Micros = (f64, Option<f64>);

/// Microseconds per item written the way `variant` says, on a fresh database in `dir`,
/// and then per item to fold them into the badge counters.
async fn micros_per_item(
    dir: &Path,
    variant: &Variant,
    items: usize,
) -> StoreResult<(Micros, Micros)> {
    let path = dir.join(format!("costs-{}.db", variant.name.replace(' ', "-")));
    let store = Store::open(&path, true)?;
    {
        let side = rusqlite::Connection::open(&path)?;
        for index in variant.drop {
            side.execute_batch(&format!("DROP INDEX {index}"))?;
        }
    }
    for run in [WARM_RUN, RUN] {
        store
            .accept_trigger(AcceptTrigger {
                run: NewRun {
                    id: run.into(),
                    workflow_key: "bench".into(),
                    request: json!({"recipients": [], "data": {}}),
                    cancellation_key: None,
                    tenant: None,
                },
                idempotency: None,
                request_hash: String::new(),
                window: chrono::Duration::hours(24),
                tenant: None,
                actor: None,
                recipients: Vec::new(),
            })
            .await?;
    }
    let with_rr = variant.recipient_run;
    let event = json!({"event": "message_created", "status": "ok",
        "step_ref": "in_app_feed_1", "step_type": "channel",
        "data": {"message_id": "2Q3dWmUo0EZHkDTd1dXr9fNbNsq"}});
    // Prepared before the write, as the runner does (`engine::waits::prepare`): a plain
    // delivery's ids and JSON off the writer thread, so the timing below is the writer's
    // own work. A decided entry is serialized in the write, as the runner's is.
    let mut pages = Vec::new();
    let passes = if variant.repeat { 2 } else { 1 };
    for at in (0..items * passes).step_by(PER_TX) {
        let run = if at < items * (passes - 1) {
            WARM_RUN
        } else {
            RUN
        };
        let start = at % items;
        let end = (start + PER_TX).min(items);
        let page = (start..end)
            .map(|i| {
                let recipient = RecipientRef::User(super::tidings::recipient(i / 1000, i % 1000));
                let mut message = message(i);
                message.workflow_run_id = run.into();
                if with_rr {
                    return Ok(PageEntry::Decided((recipient, message)));
                }
                // The deterministic id the runner gives it (`ids::recipient_run_id`).
                message.workflow_recipient_run_id =
                    tidings::ids::recipient_run_id(run, 1_764_547_200_000, &recipient);
                Ok(PageEntry::Plain(vec![message.prepare()?]))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        pages.push((run, page));
    }
    let warm = pages.len() - pages.len() / passes;
    let mut cpu_before = super::tidings::process_cpu_seconds();
    let mut started = Instant::now();
    // Each run's stored cursor, which its next page moves on (as the runner's pages do).
    let mut cursors: std::collections::HashMap<&str, String> = Default::default();
    for (n, (run, page)) in pages.into_iter().enumerate() {
        if n == warm {
            cpu_before = super::tidings::process_cpu_seconds();
            started = Instant::now();
        }
        let event = event.clone();
        let to = format!("{{\"after\":{n}}}");
        // The inserted rows are handed back, as the runner's write does (dropped off the
        // writer thread).
        store
            .write_run_page(
                PER_TX,
                run.into(),
                page,
                PageCursor {
                    from: cursors.insert(run, to.clone()),
                    to,
                    last: false,
                },
                move |_, _, (reference, message)| {
                    Ok(RecipientWrite {
                        reference,
                        status: RecipientRunStatus::Completed,
                        events: vec![event.clone()],
                        messages: vec![message],
                        resume: None,
                        resume_at: None,
                        joins: Vec::new(),
                        leave_batches: false,
                    })
                },
            )
            .await?
            .ok_or_else(|| StoreError::Conflict(format!("page {n} of {run} was not written")))?;
    }
    let micros = started.elapsed().as_secs_f64() * 1e6 / items as f64;
    let cpu = cpu_before
        .zip(super::tidings::process_cpu_seconds())
        .map(|(before, after)| (after - before) * 1e6 / items as f64);
    // The fold, as the background task runs it: chunk after chunk (on SQLite, this
    // bench's engine, in the bulk lane).
    let cpu_before = super::tidings::process_cpu_seconds();
    let started = Instant::now();
    while store.fold_chunk().await?.unfolded() > 0 {}
    let fold_micros = started.elapsed().as_secs_f64() * 1e6 / items as f64;
    let fold_cpu = cpu_before
        .zip(super::tidings::process_cpu_seconds())
        .map(|(before, after)| (after - before) * 1e6 / items as f64);
    store.shutdown().await;
    Ok(((micros, cpu), (fold_micros, fold_cpu)))
}

/// Runs every variant `rounds` times (interleaved, so drift hits them alike) and reports
/// the median microseconds per item of each (wall clock, and CPU where the platform tells),
/// and its difference to `all`.
pub async fn report(items: usize, rounds: usize) -> Result<Value, String> {
    let variants = variants();
    let mut wall: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let (mut fold_wall, mut fold_cpu) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        for (i, variant) in variants.iter().enumerate() {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let ((micros, cpu_micros), (fold_micros, fold_cpu_micros)) =
                micros_per_item(dir.path(), variant, items)
                    .await
                    .map_err(|e| format!("{}: {e}", variant.name))?;
            wall[i].push(micros);
            cpu[i].extend(cpu_micros);
            if i == 0 {
                fold_wall.push(fold_micros);
                fold_cpu.extend(fold_cpu_micros);
            }
        }
    }
    let median = |s: &Vec<f64>| (!s.is_empty()).then(|| crate::median(s));
    let wall: Vec<f64> = wall.iter().map(|s| crate::median(s)).collect();
    let cpu: Vec<Option<f64>> = cpu.iter().map(median).collect();
    let (wall_all, cpu_all) = (wall[0], cpu[0]);
    let rows: Vec<Value> = variants
        .iter()
        .zip(wall.iter().zip(&cpu))
        .map(|(v, (m, c))| {
            let cpu_saves = c.zip(cpu_all).map(|(c, all)| all - c);
            eprintln!(
                "{:40} wall {m:6.2} µs/item (saves {:5.2})   cpu {} µs/item (saves {})",
                v.name,
                wall_all - m,
                c.map_or("-".into(), |c| format!("{c:6.2}")),
                cpu_saves.map_or("-".into(), |s| format!("{s:5.2}")),
            );
            json!({"variant": v.name, "micros_per_item_median": m, "saves_micros": wall_all - m,
                   "cpu_micros_per_item_median": c, "cpu_saves_micros": cpu_saves})
        })
        .collect();
    let (fold_wall, fold_cpu) = (crate::median(&fold_wall), median(&fold_cpu));
    eprintln!(
        "{:40} wall {fold_wall:6.2} µs/item                 cpu {} µs/item",
        "fold (background, after `all`)",
        fold_cpu.map_or("-".into(), |c| format!("{c:6.2}")),
    );
    Ok(json!({"items": items, "rounds": rounds, "variants": rows,
              "fold": {"micros_per_item_median": fold_wall, "cpu_micros_per_item_median": fold_cpu}}))
}

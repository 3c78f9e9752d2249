//! Due batches as their close reads them: the batch's activities and actors, the people
//! who appear in them, and the paused run that continues past it. What the close renders
//! and writes is the engine's (`engine::batch_close`), written by
//! [`Store::close_batches`].

use std::collections::HashMap;

use serde_json::Value;

use super::resumes::{PausedRun, load_paused};
use crate::model::RecipientRef;
use crate::store::batches::{self, ActivityRow};
use crate::store::{Store, StoreResult, recipients};

/// How a due batch renders, from its stored settings: `(newest_first, render_limit)`.
pub type RenderOrder = fn(&Value) -> (bool, usize);

/// One due batch, read for its close.
#[derive(Debug, Clone)]
pub struct DueBatch {
    pub batch_id: String,
    /// Live activities and the latest one's position: the close re-checks it.
    pub fingerprint: (i64, i64),
    /// Its waiting recipient runs, the one that continues first (empty: all cancelled;
    /// then nothing below was read).
    pub runs: Vec<String>,
    /// The activities it renders, in render order.
    pub rendered: Vec<ActivityRow>,
    /// Up to `max_actors` distinct actors, and how many there are.
    pub actors: Vec<RecipientRef>,
    pub total_actors: i64,
    /// Every actor above (and in `rendered`) as an entity (a minimal one if never
    /// identified).
    pub people: HashMap<RecipientRef, Value>,
    /// The continuing run as its resume reads it (`None`: it no longer waits).
    pub continuing: Option<PausedRun>,
}

impl Store {
    /// When the earliest open batch closes.
    pub(crate) async fn next_batch_close(&self) -> StoreResult<Option<String>> {
        self.read(batches::earliest_due).await
    }

    /// Up to `limit` batches due at `now`, each read for its close in one read; `order`
    /// says how each renders (from its stored settings).
    pub(crate) async fn due_batches(
        &self,
        now: String,
        limit: usize,
        order: RenderOrder,
        max_actors: usize,
    ) -> StoreResult<Vec<DueBatch>> {
        self.read(move |db| {
            let due = batches::due(db, &now, limit)?;
            let mut out = Vec::with_capacity(due.len());
            for (id, settings) in due {
                let fingerprint = batches::fingerprint(db, &id)?;
                let runs = batches::live_runs(db, &id)?;
                let Some(first) = runs.first() else {
                    out.push(DueBatch {
                        batch_id: id,
                        fingerprint,
                        runs,
                        rendered: Vec::new(),
                        actors: Vec::new(),
                        total_actors: 0,
                        people: HashMap::new(),
                        continuing: None,
                    });
                    continue;
                };
                let (newest_first, render_limit) = order(&settings);
                let rendered = batches::activities(db, &id, newest_first, render_limit)?;
                let (actors, total_actors) = batches::actors(db, &id, max_actors)?;
                let mut people: HashMap<RecipientRef, Value> = HashMap::new();
                for r in actors
                    .iter()
                    .chain(rendered.iter().filter_map(|a| a.actor.as_ref()))
                {
                    if !people.contains_key(r) {
                        let v = recipients::get_recipient(db, r)?
                            .unwrap_or_else(|| recipients::minimal(r));
                        people.insert(r.clone(), v);
                    }
                }
                let continuing = load_paused(db, first, &mut HashMap::new())?;
                out.push(DueBatch {
                    batch_id: id,
                    fingerprint,
                    runs,
                    rendered,
                    actors,
                    total_actors,
                    people,
                    continuing,
                });
            }
            Ok(out)
        })
        .await
    }
}

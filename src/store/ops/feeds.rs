//! Feed views (spec §6.1): a page with its counts and the recipients it shows, read in
//! one snapshot; and the counts the socket pushes.

use std::collections::HashSet;
use std::sync::Arc;

use crate::model::entities::Entity;
use crate::model::{FeedFilters, FeedQuery, RecipientRef};
use crate::store::feeds::{self, FeedCounts, FeedPage, PageBounds};
use crate::store::sql::Dialect;
use crate::store::{Db, Store, StoreResult, channels, recipients};

/// Everything one feed response needs, read in one snapshot.
#[derive(Debug, Clone)]
pub struct FeedView {
    pub page: FeedPage,
    pub counts: FeedCounts,
    /// The page's actors and the feed's recipient (`None`: does not exist any more).
    pub recipients: Vec<(RecipientRef, Option<Entity>)>,
}

/// One count a push needs: the feed (channel id, recipient), a client ref's filters and
/// the subscriber's tenant restriction.
pub type CountJob = ((String, RecipientRef), FeedFilters, Option<Arc<[String]>>);

impl Store {
    /// The page, counts and recipients of one feed view at `now`, a page and its counts
    /// seeing the same commits (one statement, or one read transaction); `None` when
    /// the channel is unknown.
    pub(crate) async fn feed_view(
        &self,
        channel: String,
        recipient: RecipientRef,
        query: FeedQuery,
        restriction: Option<Vec<String>>,
        now: String,
    ) -> StoreResult<Option<FeedView>> {
        self.read(move |db| {
            let read = |db: &Db<'_>| {
                read_feed(
                    db,
                    &channel,
                    &recipient,
                    &query,
                    restriction.as_deref(),
                    &now,
                )
            };
            // On PostgreSQL a transaction costs two round trips (BEGIN, COMMIT): a first
            // page, whose page and counts are one statement, goes without (its
            // recipients are read a moment after, which a name on a feed item can
            // afford). SQLite's transaction is in-process and keeps everything together.
            let bounds = bounds_of(&query);
            if db.0.dialect() == Dialect::Postgres && !feeds::needs_snapshot(&query.filters, bounds)
            {
                read(db)
            } else {
                feeds::snapshot(db, read)
            }
        })
        .await
    }

    /// The counts of each job at `now`, in one read, in job order.
    pub(crate) async fn feed_counts(
        &self,
        jobs: Vec<CountJob>,
        now: String,
    ) -> StoreResult<Vec<FeedCounts>> {
        self.read(move |db| {
            jobs.iter()
                .map(|((channel, recipient), filters, restriction)| {
                    feeds::counts(
                        db,
                        channel,
                        recipient,
                        filters,
                        restriction.as_deref(),
                        &now,
                    )
                })
                .collect()
        })
        .await
    }
}

fn read_feed(
    db: &Db<'_>,
    channel: &str,
    recipient: &RecipientRef,
    query: &FeedQuery,
    restriction: Option<&[String]>,
    now: &str,
) -> StoreResult<Option<FeedView>> {
    let Some(channel) = channels::find(db, channel)? else {
        return Ok(None);
    };
    let (page, counts) = feeds::page_and_counts(
        db,
        &channel.id,
        recipient,
        &query.filters,
        restriction,
        bounds_of(query),
        now,
    )?;
    let recipients = load_recipients(db, &page, recipient)?;
    Ok(Some(FeedView {
        page,
        counts,
        recipients,
    }))
}

fn bounds_of(query: &FeedQuery) -> PageBounds {
    PageBounds {
        page_size: query.page_size,
        after: query.after,
        before: query.before,
    }
}

/// The page's actors and (for rich activities) its recipient, each once.
fn load_recipients(
    db: &Db<'_>,
    page: &FeedPage,
    recipient: &RecipientRef,
) -> StoreResult<Vec<(RecipientRef, Option<Entity>)>> {
    let mut seen = HashSet::new();
    let refs: Vec<RecipientRef> = page
        .items
        .iter()
        .flat_map(|m| m.actors.iter())
        .chain(std::iter::once(recipient))
        .filter(|r| seen.insert((*r).clone()))
        .cloned()
        .collect();
    let found = recipients::get_recipients(db, &refs)?;
    Ok(refs.into_iter().zip(found).collect())
}

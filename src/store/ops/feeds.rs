//! Feed views (spec §6.1): a page with its counts and the recipients it shows, read in
//! one snapshot; and the counts the socket pushes.

use std::collections::HashSet;
use std::sync::Arc;

use crate::model::entities::Entity;
use crate::model::{FeedFilters, FeedQuery, RecipientRef};
use crate::store::feeds::{self, FeedCounts, FeedPage, PageBounds};
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
    /// The page, counts and recipients of one feed view at `now`, in one read
    /// transaction (a page and its counts see the same commits); `None` when the
    /// channel is unknown.
    pub(crate) async fn feed_view(
        &self,
        channel: String,
        recipient: RecipientRef,
        query: FeedQuery,
        restriction: Option<Vec<String>>,
        now: String,
    ) -> StoreResult<Option<FeedView>> {
        self.read(move |db| {
            feeds::snapshot(db, |db| {
                read_feed(
                    db,
                    &channel,
                    &recipient,
                    &query,
                    restriction.as_deref(),
                    &now,
                )
            })
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
    let bounds = PageBounds {
        page_size: query.page_size,
        after: query.after,
        before: query.before,
    };
    let page = feeds::page(
        db,
        &channel.id,
        recipient,
        &query.filters,
        restriction,
        bounds,
        now,
    )?;
    let counts = feeds::counts(db, &channel.id, recipient, &query.filters, restriction, now)?;
    let recipients = load_recipients(db, &page, recipient)?;
    Ok(Some(FeedView {
        page,
        counts,
        recipients,
    }))
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

//! The store's domain operations: everything `engine/`, `api/`, `realtime/`, `auth/`,
//! `retention/` and demo mode ask of storage. Each op is one `impl Store` method and one
//! unit of atomicity (one read snapshot or one writer command), named for the domain;
//! inside, it runs the query functions of `store/` on the writer's transaction or a
//! reader. Callers never see a `Db`, SQL text or a row type: they pass plain data (or a
//! pure decision over a narrow read/decide interface defined here, [`AudienceReads`],
//! [`Checkpoints`]) and get `model` types back, and shape the wire themselves.

mod accept;
mod audience;
mod backlog;
mod batches;
mod bulk;
mod channel_data;
mod channels;
mod checkpoints;
mod demo;
mod feeds;
mod fixtures;
mod keys;
pub mod leases;
mod lifecycle;
mod messages;
mod objects;
mod preference_sets;
mod recipients;
mod resumes;
mod retention;
mod run_records;
mod run_writes;
mod runs;
mod schedules;
mod statistics;
mod subscriptions;
mod tenants;
mod translations;
mod users;
mod workflows;

pub use accept::{AcceptTrigger, Accepting};
pub(crate) use accept::{upsert_inline, upsert_tenant};
pub use audience::{AudienceReads, Subscriber};
pub use batches::DueBatch;
pub use bulk::BulkTarget;
pub use checkpoints::Checkpoints;
pub use feeds::{CountJob, FeedView};
pub use resumes::{DueResume, PausedRun};
pub use retention::Expiry;
pub use run_writes::{
    ActivityWrite, BatchClose, JoinWrite, PageCursor, PageEntry, RecipientWrite, Resumed,
};
pub use runs::{OpenedRun, RunEntities, WalkInputs};
pub use schedules::ScheduleTx;
pub use translations::TranslationFilter;

use super::recipients::ChannelDataOwner;
use crate::model::entities::EntityKey;

/// The attached-rows owner (preference sets, channel data) an entity key names.
fn owner(key: &EntityKey) -> ChannelDataOwner<'_> {
    match key {
        EntityKey::User(id) => ChannelDataOwner::user(id),
        EntityKey::Object { collection, id } => ChannelDataOwner::object(collection, id),
        EntityKey::Tenant(id) => ChannelDataOwner::tenant(id),
    }
}

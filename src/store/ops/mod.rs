//! Domain operations: what `engine/` asks of the store, each an `impl Store` method that
//! is one unit of atomicity (one read or one write transaction), named for the domain.
//! Grouped by the caller's domain, one file each. Callers pass plain data, or a pure
//! decision over a narrow read/decide interface defined here ([`AudienceReads`],
//! [`Checkpoints`]); no `Db`, SQL or row type is handed out.

mod accept;
mod audience;
mod checkpoints;
mod runs;

pub use accept::{AcceptTrigger, Accepting};
pub(crate) use accept::{upsert_inline, upsert_tenant};
pub use audience::{AudienceReads, Subscriber};
pub use checkpoints::Checkpoints;
pub use runs::{OpenedRun, RunEntities, WalkInputs};

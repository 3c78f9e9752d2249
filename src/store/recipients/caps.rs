//! Per-recipient storage caps (issue 17 item 6): what one recipient's attached rows may
//! hold, checked inside the write that would break them, so every path (the channel-data
//! and preference endpoints, inline `preferences`/`channel_data` in identify, bulk
//! identify, a trigger's inline recipients, merges) obeys the same rule. An end user's
//! token can then store at most [`MAX_PREFERENCE_SETS_PER_RECIPIENT`] ×
//! [`MAX_PREFERENCE_SET_BYTES`] + [`MAX_CHANNEL_DATA_PER_RECIPIENT`] ×
//! [`MAX_CHANNEL_DATA_BYTES`] (about 38 MB) however often it writes.

use crate::store::sql::{OptionalExtension, params};

use super::attached::ChannelDataOwner;
use crate::model::properties::{
    MAX_CHANNEL_DATA_BYTES, MAX_CHANNEL_DATA_PER_RECIPIENT, MAX_PREFERENCE_SET_BYTES,
    MAX_PREFERENCE_SETS_PER_RECIPIENT,
};
use crate::store::{Db, StoreError, StoreResult, channels};

fn invalid(field: &str, message: String) -> StoreError {
    StoreError::Invalid {
        field: field.to_owned(),
        message,
    }
}

/// The id channel data for `channel_id` is stored under: the channel's UUID (a key is
/// accepted as feed paths accept it). A channel that does not exist has no data.
pub(super) fn channel_for_data(db: &Db<'_>, channel_id: &str) -> StoreResult<String> {
    match channels::find(db, channel_id)? {
        Some(channel) => Ok(channel.id),
        None => Err(invalid(
            "channel_data",
            format!(
                "no channel `{channel_id}` exists (channel data is kept only for existing channels)"
            ),
        )),
    }
}

/// Checks one channel's data (its JSON `text`) against the size cap and, for a channel
/// the recipient holds no data for yet, the per-recipient row cap.
pub(super) fn check_channel_data(
    db: &Db<'_>,
    owner: ChannelDataOwner<'_>,
    channel_id: &str,
    text: &str,
) -> StoreResult<()> {
    if text.len() > MAX_CHANNEL_DATA_BYTES {
        return Err(invalid(
            "channel_data",
            format!("one channel's data may take at most {MAX_CHANNEL_DATA_BYTES} bytes as JSON"),
        ));
    }
    let exists =
        db.0.prepare_cached(
            "SELECT 1 FROM channel_data WHERE recipient_kind = ?1 AND recipient_collection = ?2 \
             AND recipient_id = ?3 AND channel_id = ?4",
        )?
        .query_row(
            params![owner.kind, owner.collection, owner.id, channel_id],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if !exists && count(db, "channel_data", owner)? >= MAX_CHANNEL_DATA_PER_RECIPIENT {
        return Err(invalid(
            "channel_data",
            format!(
                "a recipient may hold channel data for at most {MAX_CHANNEL_DATA_PER_RECIPIENT} channels"
            ),
        ));
    }
    Ok(())
}

/// Checks one preference set's body (its JSON `text`) against the size cap and, for a
/// set the recipient does not hold yet, the per-recipient set cap.
pub(super) fn check_preference_set(
    db: &Db<'_>,
    owner: ChannelDataOwner<'_>,
    set_id: &str,
    text: &str,
) -> StoreResult<()> {
    if text.len() > MAX_PREFERENCE_SET_BYTES {
        return Err(invalid(
            "preferences",
            format!("one preference set may take at most {MAX_PREFERENCE_SET_BYTES} bytes as JSON"),
        ));
    }
    let exists =
        db.0.prepare_cached(
            "SELECT 1 FROM preference_sets WHERE recipient_kind = ?1 AND recipient_collection = ?2 \
             AND recipient_id = ?3 AND set_id = ?4",
        )?
        .query_row(
            params![owner.kind, owner.collection, owner.id, set_id],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if !exists && count(db, "preference_sets", owner)? >= MAX_PREFERENCE_SETS_PER_RECIPIENT {
        return Err(invalid(
            "preferences",
            format!(
                "a recipient may hold at most {MAX_PREFERENCE_SETS_PER_RECIPIENT} preference sets"
            ),
        ));
    }
    Ok(())
}

/// Rows of `table` the recipient holds (a primary-key prefix scan, at most the cap + 1).
fn count(db: &Db<'_>, table: &str, owner: ChannelDataOwner<'_>) -> StoreResult<usize> {
    let n: i64 =
        db.0.prepare_cached(&format!(
            "SELECT COUNT(*) FROM {table} WHERE recipient_kind = ?1 AND recipient_collection = ?2 \
             AND recipient_id = ?3"
        ))?
        .query_row(params![owner.kind, owner.collection, owner.id], |r| {
            r.get(0)
        })?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

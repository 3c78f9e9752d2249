//! Identifier generation. Message ids are KSUIDs (27 base62 chars, time-sortable) like
//! Knock's; run ids are UUID v4 as Knock documents.

use svix_ksuid::{Ksuid, KsuidLike};

/// A new message id in Knock's format.
pub fn message_id() -> String {
    Ksuid::new(None, None).to_string()
}

/// A new UUID v4, for run ids, channel ids, version ids and bulk operations.
pub fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A new time-ordered UUID (v7), for ids minted at fan-out rates (recipient runs): a
/// random v4 lands on a random page of every index keyed by it, so each of the ~1,000
/// items in a commit dirtied a page of its own (4 KiB to the WAL and its fsync); ids that
/// grow with time append to the index's last pages instead.
pub fn ordered_uuid() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn message_ids_have_knocks_shape() {
        let id = super::message_id();
        assert_eq!(id.len(), 27);
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn ordered_uuids_sort_in_the_order_they_were_made() {
        let ids: Vec<String> = (0..1000).map(|_| super::ordered_uuid()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        assert!(ids.iter().all(|id| uuid::Uuid::parse_str(id).is_ok()));
    }
}

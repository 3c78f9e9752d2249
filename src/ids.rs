//! Identifier generation. Message ids are KSUIDs (27 base62 chars, time-sortable) like
//! Knock's; run ids are UUID v4 as Knock documents.
//!
//! Randomness comes from a user-space CSPRNG (`rand`'s thread-local generator, ChaCha
//! seeded and periodically reseeded from the OS; `uuid`'s `fast-rng` feature uses the
//! same), not a `getrandom` syscall per id: a fan-out mints several ids per item.

use rand::RngCore;
use svix_ksuid::{Ksuid, KsuidLike};

/// A new message id in Knock's format.
pub fn message_id() -> String {
    let mut payload = [0u8; Ksuid::PAYLOAD_BYTES];
    rand::thread_rng().fill_bytes(&mut payload);
    Ksuid::new(None, Some(&payload)).to_string()
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
    fn message_ids_are_unique_and_parse_back() {
        use svix_ksuid::{Ksuid, KsuidLike};
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| super::message_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(100) {
            let parsed = Ksuid::from_base62(id).expect("a valid KSUID");
            assert_eq!(&parsed.to_string(), id);
            let age =
                crate::clock::Clock::system().now_utc().timestamp() - parsed.timestamp_seconds();
            assert!((0..=5).contains(&age), "timestamp {age}s off");
        }
    }

    #[test]
    fn uuids_are_unique_v4() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| super::uuid()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(
            ids.iter()
                .all(|id| uuid::Uuid::parse_str(id).is_ok_and(|u| u.get_version_num() == 4))
        );
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

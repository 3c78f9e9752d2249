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
    ksuid_text(Ksuid::new(None, Some(&payload)).bytes())
}

/// KSUID's base62 alphabet: digits, then upper case, then lower case.
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Characters of a KSUID's text: 62^27 > 2^160 > 62^26.
const KSUID_CHARS: usize = 27;

/// A KSUID's 20 bytes as the 27 characters `Ksuid::to_string` writes (big-endian base62,
/// zero-padded). Why not the crate's: its generic big-number encoder (`base_encode`,
/// a `Vec` per digit pass) was 5% of the runner's CPU at fan-out rates, one id per item
/// (BENCHMARKS.md, session 25); this is long division over five 32-bit limbs. The tests
/// hold it to the crate's output.
fn ksuid_text(bytes: &[u8; 20]) -> String {
    let mut limbs = [0u32; 5];
    for (limb, chunk) in limbs.iter_mut().zip(bytes.chunks_exact(4)) {
        *limb = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    let mut text = [BASE62[0]; KSUID_CHARS];
    for digit in text.iter_mut().rev() {
        let mut remainder = 0u64;
        for limb in limbs.iter_mut() {
            let dividend = (remainder << 32) | u64::from(*limb);
            // remainder < 62, so dividend / 62 < 2^32: the quotient fits its limb.
            *limb = (dividend / 62) as u32;
            remainder = dividend % 62;
        }
        *digit = BASE62[remainder as usize];
    }
    text.iter().map(|&b| char::from(b)).collect()
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

/// The id of recipient `recipient`'s run within workflow run `run_id`, which started at
/// `run_started_ms` (its `workflow_runs.inserted_at`, Unix milliseconds).
///
/// Deterministic, so a plain delivery needs no stored row to remember it: its messages
/// carry the id (their `UNIQUE (workflow_recipient_run_id, step_ref)` keeps a replay
/// exactly-once) and a replay computes the same one. Laid out as a UUID v7: the run's
/// start in the first 48 bits (all ids of one run share them, so index inserts stay at the
/// tail), then 74 bits of SHA-256 over `run_id \0 kind \0 collection \0 id`.
pub fn recipient_run_id(
    run_id: &str,
    run_started_ms: i64,
    recipient: &crate::model::RecipientRef,
) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for part in [
        run_id,
        recipient.kind(),
        recipient.collection(),
        recipient.id(),
    ] {
        hash.update(part.as_bytes());
        hash.update([0u8]);
    }
    let digest = hash.finalize();
    let mut random = [0u8; 10];
    random.copy_from_slice(&digest[..10]);
    let millis = u64::try_from(run_started_ms).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &random)
        .into_uuid()
        .to_string()
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
    fn ksuid_text_is_what_the_ksuid_crate_writes() {
        use rand::RngCore;
        use svix_ksuid::{Ksuid, KsuidLike};
        let mut edges = vec![[0u8; 20], [0xff; 20], [0x80; 20]];
        for i in 0..20 {
            let mut one = [0u8; 20];
            one[i] = 1;
            edges.push(one);
        }
        let mut rng = rand::thread_rng();
        let random = (0..10_000).map(|_| {
            let mut bytes = [0u8; 20];
            rng.fill_bytes(&mut bytes);
            bytes
        });
        for bytes in edges.into_iter().chain(random) {
            let ksuid = Ksuid::from_bytes(bytes);
            assert_eq!(super::ksuid_text(&bytes), ksuid.to_string(), "{bytes:?}");
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

    #[test]
    fn recipient_run_ids_are_deterministic_v7_with_the_run_start_in_front() {
        use crate::model::RecipientRef;
        let user = RecipientRef::User("u1".into());
        let object = RecipientRef::Object {
            id: "u1".into(),
            collection: "projects".into(),
        };
        let a = super::recipient_run_id("run-1", 1_767_225_600_123, &user);
        assert_eq!(
            a,
            super::recipient_run_id("run-1", 1_767_225_600_123, &user)
        );
        let parsed = uuid::Uuid::parse_str(&a).expect("a uuid");
        assert_eq!(parsed.get_version_num(), 7);
        assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
        let (secs, nanos) = parsed.get_timestamp().expect("v7 time").to_unix();
        assert_eq!(
            secs * 1000 + u64::from(nanos) / 1_000_000,
            1_767_225_600_123
        );
        // Another run, recipient kind, collection or id: another id; same time prefix
        // within one run.
        let others = [
            super::recipient_run_id("run-2", 1_767_225_600_123, &user),
            super::recipient_run_id("run-1", 1_767_225_600_123, &object),
            super::recipient_run_id("run-1", 1_767_225_600_123, &RecipientRef::User("u2".into())),
        ];
        for other in &others {
            assert_ne!(other, &a);
            assert_eq!(other[..13], a[..13]);
        }
        // A separator keeps `ab`+`c` apart from `a`+`bc`.
        assert_ne!(
            super::recipient_run_id("runa", 0, &RecipientRef::User("b".into())),
            super::recipient_run_id("run", 0, &RecipientRef::User("ab".into()))
        );
    }
}

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

#[cfg(test)]
mod tests {
    #[test]
    fn message_ids_have_knocks_shape() {
        let id = super::message_id();
        assert_eq!(id.len(), 27);
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}

//! Feed topics: `feeds:{channel}:{user_id}` (Knock's) and
//! `object_feeds:{channel}:{collection}:{object_id}` (Tidings' object feeds).
//!
//! The channel part is a UUID or a channel key, neither of which contains `:`; a
//! collection name cannot contain `:` either, so everything after the last fixed part is
//! the recipient id (user ids may contain `:`). Parsed ids are validated like HTTP ones.

use crate::model::{CollectionName, EntityId, RecipientRef};

/// A parsed feed topic. `channel` is as the client sent it (UUID or key); the session
/// resolves it to the channel's UUID before registering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedTopic {
    pub channel: String,
    pub recipient: RecipientRef,
}

impl FeedTopic {
    /// Parses a topic, or says why it is not a feed topic.
    pub fn parse(topic: &str) -> Result<FeedTopic, String> {
        if let Some(rest) = topic.strip_prefix("feeds:") {
            let (channel, user) = rest
                .split_once(':')
                .ok_or("expected `feeds:{channel_id}:{user_id}`")?;
            let user = EntityId::parse(user).map_err(|e| format!("user id {e}"))?;
            return Ok(FeedTopic {
                channel: channel_part(channel)?,
                recipient: RecipientRef::User(user.into_string()),
            });
        }
        if let Some(rest) = topic.strip_prefix("object_feeds:") {
            let mut parts = rest.splitn(3, ':');
            let (Some(channel), Some(collection), Some(id)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err("expected `object_feeds:{channel_id}:{collection}:{object_id}`".into());
            };
            let collection =
                CollectionName::parse(collection).map_err(|e| format!("collection {e}"))?;
            let id = EntityId::parse(id).map_err(|e| format!("object id {e}"))?;
            return Ok(FeedTopic {
                channel: channel_part(channel)?,
                recipient: RecipientRef::Object {
                    id: id.into_string(),
                    collection: collection.as_str().to_owned(),
                },
            });
        }
        Err("unknown topic; expected `feeds:…` or `object_feeds:…`".into())
    }
}

fn channel_part(channel: &str) -> Result<String, String> {
    if channel.is_empty() || channel.len() > 256 {
        return Err("channel id must be 1 to 256 characters".into());
    }
    Ok(channel.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_topics_keep_colons_in_the_user_id() {
        let t = FeedTopic::parse("feeds:3f1c:user:42").unwrap();
        assert_eq!(t.channel, "3f1c");
        assert_eq!(t.recipient, RecipientRef::User("user:42".into()));
    }

    #[test]
    fn object_topics_name_collection_and_id() {
        let t = FeedTopic::parse("object_feeds:in-app-feed:projects:p1").unwrap();
        assert_eq!(t.channel, "in-app-feed");
        assert_eq!(
            t.recipient,
            RecipientRef::Object {
                id: "p1".into(),
                collection: "projects".into()
            }
        );
    }

    #[test]
    fn other_topics_are_rejected() {
        for bad in [
            "feeds:",
            "feeds:c",
            "feeds::u",
            "feeds:c:",
            "feeds:c:a/b",
            "object_feeds:c:projects",
            "object_feeds:c:bad collection:p1",
            "guides:c",
            "phoenix",
        ] {
            assert!(FeedTopic::parse(bad).is_err(), "{bad:?}");
        }
    }
}

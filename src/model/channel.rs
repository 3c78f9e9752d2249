//! An in-app feed channel of the registry: SDKs address feeds by its UUID, workflow
//! steps name its `key`.

use serde::Serialize;

/// The channel a fresh database starts with.
pub const DEFAULT_CHANNEL_KEY: &str = "in-app-feed";

/// A registered channel.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Channel {
    pub id: String,
    pub key: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub inserted_at: String,
}

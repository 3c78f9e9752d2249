//! Validated identifiers for users, objects, tenants and collections (spec §1.2).

use std::fmt;

/// A user, object or tenant id: 1–256 chars, no `/` or `#`, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityId(String);

impl EntityId {
    pub const MAX_LEN: usize = 256;

    /// Why a string is not a valid id, or the id.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("must not be empty".into());
        }
        if raw.chars().count() > Self::MAX_LEN {
            return Err(format!("must be at most {} characters", Self::MAX_LEN));
        }
        if raw.contains('/') || raw.contains('#') {
            return Err("must not contain `/` or `#`".into());
        }
        if raw.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(EntityId(raw.to_owned()))
    }

    /// A tenant or object id: [`EntityId::parse`] plus only [`SAFE_ID_CHARS`] — characters
    /// that never need percent-encoding in a URL path — and not `.` or `..`. Grants name
    /// tenants and objects inside URIs, so their ids must read the same encoded or not.
    pub fn parse_safe(raw: &str) -> Result<Self, String> {
        let id = Self::parse(raw)?;
        if !raw.chars().all(is_safe_id_char) {
            return Err(format!("may only contain {SAFE_ID_CHARS}"));
        }
        if raw == "." || raw == ".." {
            return Err("must not be `.` or `..`".into());
        }
        Ok(id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// The characters tenant and object ids may hold, as error messages and the README say it.
pub const SAFE_ID_CHARS: &str = "letters, digits, `-`, `_`, `.`, `~`, `:` and `@`";

fn is_safe_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | ':' | '@')
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An object collection name: 1–128 chars of `[A-Za-z0-9_.-]`, optionally starting with `$`
/// (Knock's system collections such as `$tenants`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CollectionName(String);

impl CollectionName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let body = raw.strip_prefix('$').unwrap_or(raw);
        if body.is_empty() || raw.len() > 128 {
            return Err("must be 1 to 128 characters".into());
        }
        if !body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err("may only contain letters, digits, `_`, `-` and `.`".into());
        }
        Ok(CollectionName(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CollectionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_ids_follow_knocks_rules() {
        assert!(EntityId::parse("user-1").is_ok());
        assert!(EntityId::parse("a@b.com").is_ok());
        assert!(EntityId::parse("").is_err());
        assert!(EntityId::parse("a/b").is_err());
        assert!(EntityId::parse("a#b").is_err());
        assert!(EntityId::parse(&"x".repeat(257)).is_err());
        assert!(EntityId::parse(&"x".repeat(256)).is_ok());
    }

    #[test]
    fn tenant_and_object_ids_hold_only_url_safe_characters() {
        for ok in ["acme", "p-1", "a_b.c~d:e@f", "0123"] {
            assert!(EntityId::parse_safe(ok).is_ok(), "{ok}");
        }
        for bad in [
            "acme?x", "acme=", "acme&", "ac%6De", "acme ", "ac/me", "é", ".", "..", "",
        ] {
            assert!(EntityId::parse_safe(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn collections_allow_system_prefix() {
        assert!(CollectionName::parse("projects").is_ok());
        assert!(CollectionName::parse("$tenants").is_ok());
        assert!(CollectionName::parse("bad name").is_err());
        assert!(CollectionName::parse("$").is_err());
    }
}

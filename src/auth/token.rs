//! RS256 user tokens (`X-Knock-User-Token`, socket `user_token`): verification and grants.

use std::collections::BTreeMap;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use crate::model::{CollectionName, EntityId};

/// What a verified token says about its bearer.
#[derive(Debug, Clone, PartialEq)]
pub struct UserClaims {
    pub user_id: String,
    /// Granted resource → grant names (aliases normalized).
    pub grants: BTreeMap<GrantResource, Vec<String>>,
    pub explicit_grants: bool,
    /// `exp`, in Unix seconds: a socket authenticated by this token stops accepting
    /// joins (and closes) once it passes.
    pub expires_at: u64,
}

/// The resource a grant names, parsed from its URI. Grants compare on this, exactly:
/// `acme?x`, `acme=` or `ac%6De` are not the tenant `acme`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum GrantResource {
    /// `/v1/users/{id}`.
    User(String),
    /// `/v1/tenants/{id}` or `/v1/objects/$tenants/{id}`.
    Tenant(String),
    /// `/v1/objects/{collection}/{id}`.
    Object { collection: String, id: String },
    /// A grant URI that does not parse. It grants nothing, but it still counts as a
    /// grant: a misspelt tenant grant must not leave the token unrestricted.
    Unparsed(String),
}

/// Leeway, in seconds, for `exp` and `nbf` (clock skew between the signer and us).
pub const CLOCK_LEEWAY_SECS: u64 = 5;

#[derive(Debug, Deserialize)]
struct RawClaims {
    sub: String,
    exp: u64,
    #[serde(default)]
    grants: Option<BTreeMap<String, BTreeMap<String, Value>>>,
    #[serde(default)]
    explicit_grants: Option<bool>,
}

/// Parses the verification key once (at start); [`verify`] reuses it for every token.
pub fn decoding_key(public_pem: &str) -> Result<DecodingKey, String> {
    DecodingKey::from_rsa_pem(public_pem.as_bytes()).map_err(|e| format!("server key: {e}"))
}

/// Verifies signature (RS256 only), `exp`, `nbf` (both with [`CLOCK_LEEWAY_SECS`]) and `sub`.
pub fn verify(token: &str, key: &DecodingKey) -> Result<UserClaims, String> {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_required_spec_claims(&["exp", "sub"]);
    validation.leeway = CLOCK_LEEWAY_SECS;
    validation.validate_nbf = true;
    validation.validate_aud = false;
    let data =
        jsonwebtoken::decode::<RawClaims>(token, key, &validation).map_err(|e| e.to_string())?;
    let raw = data.claims;
    if raw.sub.is_empty() {
        return Err("`sub` is empty".into());
    }
    // A user id never holds control characters (`EntityId`); refused here, before the id
    // reaches a log line or a query.
    if raw.sub.chars().any(char::is_control) {
        return Err("`sub` must not contain control characters".into());
    }
    let grants = raw
        .grants
        .unwrap_or_default()
        .into_iter()
        .map(|(uri, names)| {
            let resource = GrantResource::parse(&uri).unwrap_or_else(|why| {
                tracing::warn!(user = %raw.sub, grant = %uri.escape_debug(), "grant ignored: {why}");
                GrantResource::Unparsed(uri)
            });
            (
                resource,
                names.into_keys().map(|n| normalize_grant(&n)).collect(),
            )
        })
        .collect();
    Ok(UserClaims {
        user_id: raw.sub,
        grants,
        explicit_grants: raw.explicit_grants.unwrap_or(false),
        expires_at: raw.exp,
    })
}

impl GrantResource {
    /// Parses a grant URI: `https://<any host>/v1/...` (the SDKs hard-code Knock's host;
    /// only the path matters) or a bare `/v1/...` path. The path is split on `/`; a user
    /// id segment is percent-decoded once; tenant ids, collections and object ids are
    /// only ever made of characters that need no encoding (see `model::ids`), so they
    /// must appear as they are. No query, fragment, empty segment or whitespace.
    pub fn parse(uri: &str) -> Result<GrantResource, String> {
        let path = match uri
            .strip_prefix("https://")
            .or_else(|| uri.strip_prefix("http://"))
        {
            Some(rest) => &rest[rest.find('/').ok_or("no path after the host")?..],
            None => uri,
        };
        if let Some(c) = path
            .chars()
            .find(|c| matches!(c, '?' | '#') || c.is_whitespace() || c.is_control())
        {
            return Err(format!("{c:?} is not allowed in a grant"));
        }
        let segments: Vec<&str> = path.split('/').collect();
        match segments.as_slice() {
            ["", "v1", "users", id] => {
                let id = percent_encoding::percent_decode_str(id)
                    .decode_utf8()
                    .map_err(|_| "the user id is not UTF-8 once decoded".to_owned())?;
                EntityId::parse(&id).map_err(|m| format!("user id {m}"))?;
                Ok(GrantResource::User(id.into_owned()))
            }
            ["", "v1", "tenants", id] | ["", "v1", "objects", "$tenants", id] => {
                Ok(GrantResource::Tenant(safe(id, "tenant id")?))
            }
            ["", "v1", "objects", collection, id] => {
                CollectionName::parse(collection).map_err(|m| format!("collection {m}"))?;
                Ok(GrantResource::Object {
                    collection: (*collection).to_owned(),
                    id: safe(id, "object id")?,
                })
            }
            _ => Err(
                "not a `/v1/users/{id}`, `/v1/tenants/{id}` or `/v1/objects/{collection}/{id}` URI"
                    .into(),
            ),
        }
    }
}

fn safe(segment: &str, what: &str) -> Result<String, String> {
    EntityId::parse_safe(segment)
        .map(EntityId::into_string)
        .map_err(|m| format!("{what} {m}"))
}

/// Folds the documented spellings of one grant into one name.
pub fn normalize_grant(name: &str) -> String {
    match name {
        "feed/read" | "user_feed/read" | "user/feed_read" => "user/feed_read".into(),
        "feed/write" | "user_feed/write" | "user/feed_write" => "user/feed_write".into(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_uris_match_on_path_whatever_the_host() {
        assert_eq!(
            GrantResource::parse("https://api.knock.app/v1/users/u1"),
            Ok(GrantResource::User("u1".into()))
        );
        assert_eq!(
            GrantResource::parse("https://api.knock.app/v1/objects/$tenants/acme"),
            Ok(GrantResource::Tenant("acme".into()))
        );
        assert_eq!(
            GrantResource::parse("/v1/tenants/acme"),
            Ok(GrantResource::Tenant("acme".into()))
        );
        assert_eq!(
            GrantResource::parse("http://localhost:8080/v1/objects/projects/p1"),
            Ok(GrantResource::Object {
                collection: "projects".into(),
                id: "p1".into()
            })
        );
        assert_eq!(
            GrantResource::parse("/v1/users/a%40b.com"),
            Ok(GrantResource::User("a@b.com".into()))
        );
    }

    #[test]
    fn grants_that_only_resemble_a_resource_do_not_parse() {
        for uri in [
            "https://api.knock.app/v1/tenants/acme?x",
            "https://api.knock.app/v1/tenants/acme=",
            "https://api.knock.app/v1/tenants/acme&",
            "https://api.knock.app/v1/tenants/ac%6De",
            "https://api.knock.app/v1/tenants/acme ",
            "https://api.knock.app/v1/tenants/ac%2Fme",
            "https://api.knock.app/v1/tenants/acme/",
            "https://api.knock.app/v1/tenants/acme#x",
            "https://api.knock.app/v1/objects/projects/p1?x",
            "https://api.knock.app/v1/objects/projects/p1=",
            "https://api.knock.app/v1/objects/projects/p%31",
            "https://api.knock.app/v1/objects/projects/..",
            "https://api.knock.app/v1/users/%ff%fe",
            "https://api.knock.app",
            "/v1/tenants",
        ] {
            assert!(GrantResource::parse(uri).is_err(), "{uri} parsed");
        }
    }

    #[test]
    fn grant_aliases_normalize() {
        assert_eq!(normalize_grant("feed/read"), "user/feed_read");
        assert_eq!(normalize_grant("user_feed/read"), "user/feed_read");
        assert_eq!(normalize_grant("channel_data/read"), "channel_data/read");
    }
}

//! RS256 user tokens (`X-Knock-User-Token`, socket `user_token`): verification and grants.

use std::collections::BTreeMap;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

/// What a verified token says about its bearer.
#[derive(Debug, Clone, PartialEq)]
pub struct UserClaims {
    pub user_id: String,
    /// Resource path (host stripped, e.g. `/v1/users/u1`) → grant names (aliases normalized).
    pub grants: BTreeMap<String, Vec<String>>,
    pub explicit_grants: bool,
    /// `exp`, in Unix seconds: a socket authenticated by this token stops accepting
    /// joins (and closes) once it passes.
    pub expires_at: u64,
}

#[derive(Debug, Deserialize)]
struct RawClaims {
    sub: String,
    exp: u64,
    #[serde(default)]
    grants: Option<BTreeMap<String, BTreeMap<String, Value>>>,
    #[serde(default)]
    explicit_grants: Option<bool>,
}

/// Verifies signature (RS256 only), `exp`, and `sub`.
pub fn verify(token: &str, public_pem: &str) -> Result<UserClaims, String> {
    let key =
        DecodingKey::from_rsa_pem(public_pem.as_bytes()).map_err(|e| format!("server key: {e}"))?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_required_spec_claims(&["exp", "sub"]);
    validation.leeway = 5;
    validation.validate_aud = false;
    let data =
        jsonwebtoken::decode::<RawClaims>(token, &key, &validation).map_err(|e| e.to_string())?;
    let raw = data.claims;
    if raw.sub.is_empty() {
        return Err("`sub` is empty".into());
    }
    let grants = raw
        .grants
        .unwrap_or_default()
        .into_iter()
        .map(|(resource, names)| {
            (
                resource_path(&resource),
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

/// Grant resource URIs are hard-coded to Knock's host by the SDKs; only the path matters.
pub fn resource_path(uri: &str) -> String {
    let path = match url::Url::parse(uri) {
        Ok(url) => url.path().to_owned(),
        Err(_) => uri.to_owned(),
    };
    let decoded = percent_decode(&path);
    decoded.trim_end_matches('/').to_owned()
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(s.replace('+', "%2B").as_bytes())
        .map(|(k, v)| {
            if v.is_empty() {
                k.into_owned()
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join("&")
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
            resource_path("https://api.knock.app/v1/users/u1"),
            "/v1/users/u1"
        );
        assert_eq!(
            resource_path("https://api.knock.app/v1/objects/$tenants/acme"),
            "/v1/objects/$tenants/acme"
        );
        assert_eq!(resource_path("/v1/tenants/acme/"), "/v1/tenants/acme");
    }

    #[test]
    fn grant_aliases_normalize() {
        assert_eq!(normalize_grant("feed/read"), "user/feed_read");
        assert_eq!(normalize_grant("user_feed/read"), "user/feed_read");
        assert_eq!(normalize_grant("channel_data/read"), "channel_data/read");
    }
}

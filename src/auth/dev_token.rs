//! Development user tokens (`tidings token`): grant specs from the command line, and
//! RS256 signing with the generated key pair.
//!
//! Only the CLI signs; the private key never leaves the database through HTTP. Grant
//! resource URIs are written the way `@knocklabs/node` writes them
//! (`https://api.knock.app/v1/...`), which the verifier matches on the path.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// How `--grant` is written, for `--help`.
pub const GRANT_HELP: &str = "A grant: RESOURCE[=NAME,NAME...]. RESOURCE is `user` (the token's \
user), `tenant:ID`, `object:COLLECTION/ID`, or a path such as `/v1/objects/projects/p1` \
(a full https URI works too). NAMEs default to `user/feed_read,user/feed_write`; any \
documented grant name or alias is accepted (e.g. `user/read`, `preferences/write`, \
`channel_data/read`, `feed/read`). Repeat --grant for several resources.";

/// Turns one `--grant` value into (resource URI, grant names).
pub fn parse_grant(spec: &str, user_id: &str) -> Result<(String, Vec<String>), String> {
    let (resource, names) = match spec.split_once('=') {
        Some((resource, names)) => (resource.trim(), Some(names)),
        None => (spec.trim(), None),
    };
    let path = if resource == "user" {
        format!("/v1/users/{user_id}")
    } else if let Some(tenant) = resource.strip_prefix("tenant:") {
        non_empty(tenant, "tenant id")?;
        format!("/v1/tenants/{tenant}")
    } else if let Some(object) = resource.strip_prefix("object:") {
        let (collection, id) = object
            .split_once('/')
            .ok_or("an object grant is `object:COLLECTION/ID`")?;
        non_empty(collection, "collection")?;
        non_empty(id, "object id")?;
        format!("/v1/objects/{collection}/{id}")
    } else if resource.starts_with("/v1/") {
        resource.to_owned()
    } else if resource.starts_with("https://") || resource.starts_with("http://") {
        let path_at = resource
            .find("/v1/")
            .ok_or_else(|| format!("`{resource}` has no `/v1/...` path"))?;
        resource[path_at..].to_owned()
    } else {
        return Err(format!(
            "`{resource}` is not a grant resource; use `user`, `tenant:ID`, `object:COLLECTION/ID` or a `/v1/...` path"
        ));
    };
    super::token::GrantResource::parse(&path)
        .map_err(|why| format!("`{resource}` is not a grant resource: {why}"))?;
    let names: Vec<String> = match names {
        None => vec!["user/feed_read".into(), "user/feed_write".into()],
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect(),
    };
    if names.is_empty() {
        return Err(format!("`{spec}` names no grant after `=`"));
    }
    Ok((format!("https://api.knock.app{path}"), names))
}

fn non_empty(value: &str, what: &str) -> Result<(), String> {
    if value.is_empty() {
        Err(format!("the {what} is empty"))
    } else {
        Ok(())
    }
}

/// What a dev token says.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub user_id: String,
    pub grants: Vec<(String, Vec<String>)>,
    pub explicit_grants: bool,
    pub ttl_secs: u64,
}

/// Signs `request` with the RSA private key PEM (RS256), as `signUserToken` does.
pub fn sign(private_pem: &str, request: &TokenRequest, now: u64) -> Result<String, String> {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_pem.as_bytes())
        .map_err(|e| format!("the stored signing key is not an RSA private key: {e}"))?;
    let mut claims = json!({
        "sub": request.user_id,
        "iat": now,
        "exp": now + request.ttl_secs,
    });
    if !request.grants.is_empty() {
        let mut grants: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
        for (uri, names) in &request.grants {
            let entry = grants.entry(uri.clone()).or_default();
            for name in names {
                entry.insert(name.clone(), json!([]));
            }
        }
        claims["grants"] = json!(grants);
    }
    if request.explicit_grants {
        claims["explicit_grants"] = json!(true);
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .map_err(|e| format!("signing failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_shorthands_expand_to_knock_uris() {
        assert_eq!(
            parse_grant("user", "u1").unwrap(),
            (
                "https://api.knock.app/v1/users/u1".into(),
                vec!["user/feed_read".into(), "user/feed_write".into()]
            )
        );
        assert_eq!(
            parse_grant("tenant:acme=feed/read", "u1").unwrap(),
            (
                "https://api.knock.app/v1/tenants/acme".into(),
                vec!["feed/read".into()]
            )
        );
        assert_eq!(
            parse_grant("object:projects/p1", "u1").unwrap().0,
            "https://api.knock.app/v1/objects/projects/p1"
        );
        assert_eq!(
            parse_grant("/v1/objects/projects/p1=user/feed_read", "u1")
                .unwrap()
                .0,
            "https://api.knock.app/v1/objects/projects/p1"
        );
        assert_eq!(
            parse_grant("https://x.example/v1/tenants/t=user/read", "u1")
                .unwrap()
                .0,
            "https://api.knock.app/v1/tenants/t"
        );
    }

    #[test]
    fn bad_grant_specs_say_why() {
        for bad in [
            "tenant:",
            "object:projects",
            "object:/p1",
            "users/u1",
            "user=",
        ] {
            assert!(parse_grant(bad, "u1").is_err(), "{bad}");
        }
    }
}

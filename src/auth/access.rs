//! Access policy: may this caller touch this user's data, this object's feed, this message?
//! Handlers and the socket call these functions; nothing else decides access.
//!
//! Rules (spec §2.2–§2.3, DESIGN.md "Security"):
//! - The secret key may do everything.
//! - A public key without a token (enhanced security off) acts for the user in the path.
//! - A user token acts only for its `sub`. Without `explicit_grants` it may do anything
//!   for that user; with `explicit_grants: true` only what its grants name (grant names
//!   are normalized, so every documented alias counts). Grant resources compare exactly,
//!   as parsed by `token::GrantResource::parse`; a grant that does not parse grants
//!   nothing but still narrows the token like a tenant grant.
//! - Tenant grants (`/v1/tenants/{t}` or `/v1/objects/$tenants/{t}`) limit feed reads and
//!   writes to those tenants. Items without a tenant then need a grant on the user
//!   resource. The limit is returned as a *tenant restriction*: `Some(list)` where `""`
//!   in the list stands for "items without a tenant" (the convention `store::feeds` reads).
//! - Object feeds need a grant on that object (full view), or on a tenant (tenant admins:
//!   that tenant's items only).

use super::Caller;
use super::token::{GrantResource, UserClaims};
use crate::error::ApiError;

/// Grant names, normalized (see `token::normalize_grant`).
pub const FEED_READ: &str = "user/feed_read";
pub const FEED_WRITE: &str = "user/feed_write";
pub const USER_READ: &str = "user/read";
pub const USER_WRITE: &str = "user/write";
pub const PREFERENCES_READ: &str = "preferences/read";
pub const PREFERENCES_WRITE: &str = "preferences/write";
pub const CHANNEL_DATA_READ: &str = "channel_data/read";
pub const CHANNEL_DATA_WRITE: &str = "channel_data/write";

/// In a tenant restriction, stands for "items without a tenant are allowed too".
/// `store::feeds` reads restrictions the same way (its counters use `''` for no tenant).
pub const NO_TENANT: &str = "";

/// Whether a call reads or changes data (grants distinguish them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl Access {
    /// The feed grant this access needs under `explicit_grants`.
    fn feed_grant(self) -> &'static str {
        match self {
            Access::Read => FEED_READ,
            Access::Write => FEED_WRITE,
        }
    }
}

fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::Forbidden(message.into())
}

/// Tenants a token's grants name, from either documented URI form.
pub fn granted_tenants(claims: &UserClaims) -> Vec<String> {
    claims
        .grants
        .keys()
        .filter_map(|resource| match resource {
            GrantResource::Tenant(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

/// Whether the token's grants narrow what it may read: a tenant grant does, and so does
/// a grant that did not parse (it grants nothing, and must not widen the token either).
fn narrowed(claims: &UserClaims) -> bool {
    claims.grants.keys().any(|resource| {
        matches!(
            resource,
            GrantResource::Tenant(_) | GrantResource::Unparsed(_)
        )
    })
}

/// Whether the token holds `grant` on `resource`.
/// Without `explicit_grants`, naming the resource at all is enough.
fn holds(claims: &UserClaims, resource: &GrantResource, grant: &str) -> bool {
    claims
        .grants
        .get(resource)
        .is_some_and(|names| !claims.explicit_grants || names.iter().any(|n| n == grant))
}

/// Tenants on which the token holds `grant` (any grant when not explicit).
fn tenants_holding(claims: &UserClaims, grant: &str) -> Vec<String> {
    claims
        .grants
        .iter()
        .filter_map(|(resource, names)| {
            let GrantResource::Tenant(tenant) = resource else {
                return None;
            };
            (!claims.explicit_grants || names.iter().any(|n| n == grant)).then(|| tenant.clone())
        })
        .collect()
}

fn user_path(user_id: &str) -> GrantResource {
    GrantResource::User(user_id.to_owned())
}

/// Secret-key-only operations reached through an endpoint browsers may also call.
pub fn server_only(caller: &Caller) -> Result<(), ApiError> {
    match caller {
        Caller::Server => Ok(()),
        _ => Err(ApiError::IncorrectTokenType),
    }
}

/// `GET`/`PUT /v1/users/{id}` and similar per-user resources: the token must belong to
/// the user. For a check that also honours `explicit_grants`, use [`user_grant`].
pub fn user_resource(caller: &Caller, user_id: &str) -> Result<(), ApiError> {
    match caller {
        Caller::Server | Caller::Public => Ok(()),
        Caller::User(claims) if claims.user_id == user_id => Ok(()),
        Caller::User(_) => Err(forbidden("The user token does not belong to this user.")),
    }
}

/// A per-user resource that needs a named grant (`USER_READ`, `PREFERENCES_WRITE`, …)
/// when the token sets `explicit_grants`.
pub fn user_grant(caller: &Caller, user_id: &str, grant: &str) -> Result<(), ApiError> {
    user_resource(caller, user_id)?;
    match caller {
        Caller::User(claims) if claims.explicit_grants => {
            if holds(claims, &user_path(user_id), grant) {
                Ok(())
            } else {
                Err(forbidden(format!(
                    "The user token does not grant `{grant}` on this user."
                )))
            }
        }
        _ => Ok(()),
    }
}

/// The tenant restriction of a user-token caller on its own feed, or why it has none.
fn feed_restriction(
    claims: &UserClaims,
    user_id: &str,
    access: Access,
) -> Result<Option<Vec<String>>, ApiError> {
    let grant = access.feed_grant();
    let on_user = if claims.explicit_grants {
        holds(claims, &user_path(user_id), grant)
    } else {
        // Without explicit grants the token may read its whole feed, unless tenant
        // grants narrow it; then the user grant re-admits items without a tenant.
        claims.grants.contains_key(&user_path(user_id)) || !narrowed(claims)
    };
    let mut tenants = tenants_holding(claims, grant);
    if tenants.is_empty() {
        return if on_user {
            Ok(None)
        } else {
            Err(forbidden(format!(
                "The user token does not grant `{grant}` on this feed."
            )))
        };
    }
    if on_user {
        tenants.push(NO_TENANT.to_owned());
    }
    Ok(Some(tenants))
}

/// A user's feed, optionally scoped to `tenant` (the feed's `tenant` filter).
/// Returns the tenant restriction (`None` = unrestricted) the caller must apply to what
/// it reads or writes.
pub fn user_feed(
    caller: &Caller,
    user_id: &str,
    tenant: Option<&str>,
    access: Access,
) -> Result<Option<Vec<String>>, ApiError> {
    user_resource(caller, user_id)?;
    let Caller::User(claims) = caller else {
        return Ok(None);
    };
    let restriction = feed_restriction(claims, user_id, access)?;
    let Some(allowed) = &restriction else {
        return Ok(None);
    };
    match tenant {
        Some(t) if allowed.iter().any(|g| g == t) => Ok(restriction),
        Some(t) => Err(forbidden(format!(
            "The user token has no grant for tenant `{t}`."
        ))),
        None if allowed.iter().any(|g| g == NO_TENANT) => Ok(restriction),
        None => Err(forbidden(
            "The user token is limited to tenants; pass `tenant`.",
        )),
    }
}

/// An object's feed. Returns the tenant restriction, as [`user_feed`].
pub fn object_feed(
    caller: &Caller,
    collection: &str,
    object_id: &str,
    access: Access,
) -> Result<Option<Vec<String>>, ApiError> {
    match caller {
        Caller::Server => Ok(None),
        Caller::Public => Err(forbidden(
            "Object feeds need the secret key or a user token with a grant.",
        )),
        Caller::User(claims) => {
            let grant = access.feed_grant();
            let object = GrantResource::Object {
                collection: collection.to_owned(),
                id: object_id.to_owned(),
            };
            if holds(claims, &object, grant) {
                return Ok(None);
            }
            let tenants = tenants_holding(claims, grant);
            if tenants.is_empty() {
                Err(forbidden(format!(
                    "The user token has no grant on `{collection}/{object_id}`."
                )))
            } else {
                Ok(Some(tenants))
            }
        }
    }
}

/// Tenant-wide views (`GET /v1/tenants/{t}/objects`): the secret key, or a user token
/// holding the feed grant on that tenant (a tenant admin).
pub fn tenant_admin(caller: &Caller, tenant: &str, access: Access) -> Result<(), ApiError> {
    match caller {
        Caller::Server => Ok(()),
        Caller::Public => Err(forbidden(
            "Tenant views need the secret key or a user token with a grant on the tenant.",
        )),
        Caller::User(claims) => {
            if tenants_holding(claims, access.feed_grant())
                .iter()
                .any(|t| t == tenant)
            {
                Ok(())
            } else {
                Err(forbidden(format!(
                    "The user token has no grant on tenant `{tenant}`."
                )))
            }
        }
    }
}

/// Changing a single message (status endpoints): a browser caller must be its
/// recipient, hold the feed write grant, and under tenant grants the message's tenant
/// must be granted.
pub fn message(
    caller: &Caller,
    recipient_user: Option<&str>,
    tenant: Option<&str>,
) -> Result<(), ApiError> {
    message_access(caller, recipient_user, tenant, Access::Write)
}

/// A single message, read or written (`GET /v1/messages/{id}` reads).
pub fn message_access(
    caller: &Caller,
    recipient_user: Option<&str>,
    tenant: Option<&str>,
    access: Access,
) -> Result<(), ApiError> {
    match caller {
        Caller::Server => Ok(()),
        Caller::Public => match recipient_user {
            Some(_) => Ok(()),
            None => Err(forbidden("This message is not in a user feed.")),
        },
        Caller::User(claims) => {
            let Some(user) = recipient_user.filter(|u| *u == claims.user_id) else {
                return Err(forbidden(
                    "The message does not belong to the user token's user.",
                ));
            };
            match feed_restriction(claims, user, access)? {
                None => Ok(()),
                Some(allowed) if allowed.iter().any(|g| g == tenant.unwrap_or(NO_TENANT)) => Ok(()),
                Some(_) => Err(forbidden(
                    "The user token has no grant for this message's tenant.",
                )),
            }
        }
    }
}

/// Whether a tenant restriction admits an item with `tenant`.
pub fn restriction_admits(restriction: Option<&[String]>, tenant: Option<&str>) -> bool {
    restriction.is_none_or(|allowed| allowed.iter().any(|g| g == tenant.unwrap_or(NO_TENANT)))
}

#[cfg(test)]
#[path = "access_tests.rs"]
mod tests;

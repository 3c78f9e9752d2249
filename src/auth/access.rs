//! Access policy: may this caller touch this user's data, this object's feed, this message?
//! Handlers and the socket call these functions; nothing else decides access.
//!
//! Rules (spec §2.2–§2.3, DESIGN.md "Security"):
//! - The secret key may do everything.
//! - A public key without a token (enhanced security off) acts for the user in the path.
//! - A user token acts only for its `sub`. If it carries tenant grants, feed reads/writes
//!   are limited to those tenants (a no-tenant feed then needs a grant on the user).
//! - Object feeds need a grant on that object, or on a tenant (tenant admins).

use super::Caller;
use super::token::UserClaims;
use crate::error::ApiError;

/// In a tenant restriction, stands for "items without a tenant are allowed too".
/// `store::feeds` reads restrictions the same way (its counters use `''` for no tenant).
pub const NO_TENANT: &str = "";

/// Whether a call reads or changes data (grants distinguish them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::Forbidden(message.into())
}

/// Tenants a token's grants name, from either documented URI form.
pub fn granted_tenants(claims: &UserClaims) -> Vec<String> {
    claims
        .grants
        .keys()
        .filter_map(|path| {
            path.strip_prefix("/v1/tenants/")
                .or_else(|| path.strip_prefix("/v1/objects/$tenants/"))
                .map(str::to_owned)
        })
        .collect()
}

/// Secret-key-only operations reached through an endpoint browsers may also call.
pub fn server_only(caller: &Caller) -> Result<(), ApiError> {
    match caller {
        Caller::Server => Ok(()),
        _ => Err(ApiError::IncorrectTokenType),
    }
}

/// `GET`/`PUT /v1/users/{id}` and similar per-user resources.
pub fn user_resource(caller: &Caller, user_id: &str) -> Result<(), ApiError> {
    match caller {
        Caller::Server | Caller::Public => Ok(()),
        Caller::User(claims) if claims.user_id == user_id => Ok(()),
        Caller::User(_) => Err(forbidden("The user token does not belong to this user.")),
    }
}

/// A user's feed, optionally scoped to `tenant` (the feed's `tenant` filter).
/// Returns the tenants the caller is limited to (`None` = unrestricted), which the
/// caller must apply to what it reads or writes; the list holds [`NO_TENANT`] when items
/// without a tenant are visible too.
pub fn user_feed(
    caller: &Caller,
    user_id: &str,
    tenant: Option<&str>,
    _access: Access,
) -> Result<Option<Vec<String>>, ApiError> {
    user_resource(caller, user_id)?;
    let Caller::User(claims) = caller else {
        return Ok(None);
    };
    let mut tenants = granted_tenants(claims);
    if tenants.is_empty() {
        return Ok(None);
    }
    let user_grant = claims.grants.contains_key(&format!("/v1/users/{user_id}"));
    if user_grant {
        // Items without a tenant belong to the user's own feed, which the user grant covers.
        tenants.push(NO_TENANT.to_owned());
    }
    match tenant {
        Some(t) if tenants.iter().any(|g| g == t) => Ok(Some(tenants)),
        Some(t) => Err(forbidden(format!(
            "The user token has no grant for tenant `{t}`."
        ))),
        None if user_grant => Ok(Some(tenants)),
        None => Err(forbidden(
            "The user token is limited to tenants; pass `tenant`.",
        )),
    }
}

/// An object's feed. Returns the tenants the caller is limited to, as [`user_feed`].
pub fn object_feed(
    caller: &Caller,
    collection: &str,
    object_id: &str,
    _access: Access,
) -> Result<Option<Vec<String>>, ApiError> {
    match caller {
        Caller::Server => Ok(None),
        Caller::Public => Err(forbidden(
            "Object feeds need the secret key or a user token with a grant.",
        )),
        Caller::User(claims) => {
            if claims
                .grants
                .contains_key(&format!("/v1/objects/{collection}/{object_id}"))
            {
                return Ok(None);
            }
            let tenants = granted_tenants(claims);
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

/// A single message: a browser caller must be its recipient (and, under tenant grants,
/// the message's tenant must be granted).
pub fn message(
    caller: &Caller,
    recipient_user: Option<&str>,
    tenant: Option<&str>,
) -> Result<(), ApiError> {
    match caller {
        Caller::Server => Ok(()),
        Caller::Public => match recipient_user {
            Some(_) => Ok(()),
            None => Err(forbidden("This message is not in a user feed.")),
        },
        Caller::User(claims) => {
            if recipient_user != Some(claims.user_id.as_str()) {
                return Err(forbidden(
                    "The message does not belong to the user token's user.",
                ));
            }
            let tenants = granted_tenants(claims);
            match tenant {
                _ if tenants.is_empty() => Ok(()),
                Some(t) if tenants.iter().any(|g| g == t) => Ok(()),
                _ => Err(forbidden(
                    "The user token has no grant for this message's tenant.",
                )),
            }
        }
    }
}

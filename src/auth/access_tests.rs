//! Unit tests of the access policy: one claim set per rule of §2.3.

use std::collections::BTreeMap;

use super::*;

fn claims(user: &str, grants: &[(&str, &[&str])], explicit: bool) -> Caller {
    let grants: BTreeMap<GrantResource, Vec<String>> = grants
        .iter()
        .map(|(path, names)| {
            (
                GrantResource::parse(path)
                    .unwrap_or_else(|_| GrantResource::Unparsed((*path).to_owned())),
                names.iter().map(|n| (*n).to_owned()).collect(),
            )
        })
        .collect();
    Caller::User(UserClaims {
        user_id: user.into(),
        grants,
        explicit_grants: explicit,
        expires_at: u64::MAX,
    })
}

#[test]
fn a_token_without_grants_reads_its_own_whole_feed_only() {
    let c = claims("u1", &[], false);
    assert_eq!(user_feed(&c, "u1", None, Access::Read).unwrap(), None);
    assert_eq!(user_feed(&c, "u1", Some("t"), Access::Write).unwrap(), None);
    assert!(user_feed(&c, "u2", None, Access::Read).is_err());
}

#[test]
fn tenant_grants_restrict_the_feed_to_those_tenants() {
    let c = claims("u1", &[("/v1/tenants/acme", &[])], false);
    assert_eq!(
        user_feed(&c, "u1", Some("acme"), Access::Read).unwrap(),
        Some(vec!["acme".to_owned()])
    );
    assert!(user_feed(&c, "u1", Some("other"), Access::Read).is_err());
    assert!(user_feed(&c, "u1", None, Access::Read).is_err());
}

#[test]
fn a_user_grant_beside_tenant_grants_admits_items_without_tenant() {
    let c = claims(
        "u1",
        &[("/v1/objects/$tenants/acme", &[]), ("/v1/users/u1", &[])],
        false,
    );
    let r = user_feed(&c, "u1", None, Access::Read).unwrap().unwrap();
    assert!(r.contains(&"acme".to_owned()) && r.contains(&String::new()));
    assert!(restriction_admits(Some(&r), None));
    assert!(restriction_admits(Some(&r), Some("acme")));
    assert!(!restriction_admits(Some(&r), Some("other")));
}

#[test]
fn explicit_grants_separate_feed_read_from_feed_write() {
    let c = claims("u1", &[("/v1/users/u1", &[FEED_READ])], true);
    assert_eq!(user_feed(&c, "u1", None, Access::Read).unwrap(), None);
    assert!(user_feed(&c, "u1", None, Access::Write).is_err());
    assert!(message(&c, Some("u1"), None).is_err());
    assert!(message_access(&c, Some("u1"), None, Access::Read).is_ok());
    assert!(user_grant(&c, "u1", USER_READ).is_err());
    let w = claims("u1", &[("/v1/users/u1", &[FEED_READ, FEED_WRITE])], true);
    assert!(message(&w, Some("u1"), None).is_ok());
}

#[test]
fn explicit_tenant_grants_count_only_with_the_needed_name() {
    let c = claims(
        "u1",
        &[
            ("/v1/tenants/acme", &[FEED_READ]),
            ("/v1/tenants/beta", &[PREFERENCES_READ]),
        ],
        true,
    );
    assert_eq!(
        user_feed(&c, "u1", Some("acme"), Access::Read).unwrap(),
        Some(vec!["acme".to_owned()])
    );
    assert!(user_feed(&c, "u1", Some("beta"), Access::Read).is_err());
    assert!(user_feed(&c, "u1", Some("acme"), Access::Write).is_err());
}

#[test]
fn messages_belong_to_the_token_user_and_its_tenants() {
    let c = claims("u1", &[("/v1/tenants/acme", &[])], false);
    assert!(message(&c, Some("u1"), Some("acme")).is_ok());
    assert!(message(&c, Some("u1"), Some("beta")).is_err());
    assert!(message(&c, Some("u1"), None).is_err());
    assert!(message(&c, Some("u2"), Some("acme")).is_err());
    assert!(message(&Caller::Server, None, None).is_ok());
}

#[test]
fn object_feeds_need_a_grant_on_the_object_or_a_tenant() {
    let owner = claims("u1", &[("/v1/objects/projects/p1", &[])], false);
    assert_eq!(
        object_feed(&owner, "projects", "p1", Access::Read).unwrap(),
        None
    );
    assert!(object_feed(&owner, "projects", "p2", Access::Read).is_err());
    let admin = claims("u1", &[("/v1/tenants/acme", &[FEED_READ])], true);
    assert_eq!(
        object_feed(&admin, "projects", "p2", Access::Read).unwrap(),
        Some(vec!["acme".to_owned()])
    );
    assert!(object_feed(&Caller::Public, "projects", "p1", Access::Read).is_err());
    let plain = claims("u1", &[], false);
    assert!(object_feed(&plain, "projects", "p1", Access::Read).is_err());
}

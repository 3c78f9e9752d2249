//! The HTTP API: one file per resource. Handlers parse, authorize, call `engine`/`store`,
//! and shape Knock's JSON. No SQL here.

mod access_log;
mod bulk_operations;
mod channel_data;
mod channels;
mod common;
mod demo;
mod feeds;
mod health;
mod message_bulk;
mod message_content;
mod message_history;
mod message_lifecycle;
mod message_status;
mod messages;
mod metrics;
mod objects;
mod pages;
mod preferences;
mod raw_input;
mod recipient_input;
mod run_records;
mod schedules;
mod subscriptions;
mod tenant_objects;
mod tenants;
mod translations;
mod unsupported;
mod users;
mod users_bulk;
mod workflows;

pub use access_log::{access_log, note_tenant};
pub use common::{
    cors, fallback, json_config, path_config, payload_config, query_config, request_id,
};

use actix_web::web;

/// The route table.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // First: these exact paths would otherwise be taken by generic patterns such as
    // `/v1/messages/{id}/{status}`. None of them overlaps an implemented endpoint.
    unsupported::routes(cfg);
    health::routes(cfg);
    metrics::routes(cfg);
    pages::routes(cfg);
    demo::routes(cfg);
    feeds::routes(cfg);
    message_content::routes(cfg);
    message_history::routes(cfg);
    message_lifecycle::routes(cfg);
    message_status::routes(cfg);
    message_bulk::routes(cfg);
    messages::routes(cfg);
    translations::routes(cfg);
    subscriptions::routes(cfg);
    users::routes(cfg);
    users_bulk::routes(cfg);
    objects::routes(cfg);
    tenants::routes(cfg);
    tenant_objects::routes(cfg);
    bulk_operations::routes(cfg);
    channel_data::routes(cfg);
    preferences::routes(cfg);
    workflows::routes(cfg);
    channels::routes(cfg);
    run_records::routes(cfg);
    schedules::routes(cfg);
}

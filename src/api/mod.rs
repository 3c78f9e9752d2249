//! The HTTP API: one file per resource. Handlers parse, authorize, call `engine`/`store`,
//! and shape Knock's JSON. No SQL here.

mod channels;
mod common;
mod health;
mod workflows;

pub use common::{
    cors, fallback, json_config, path_config, payload_config, query_config, request_id,
};

use actix_web::web;

/// The route table.
pub fn configure(cfg: &mut web::ServiceConfig) {
    health::routes(cfg);
    workflows::routes(cfg);
    channels::routes(cfg);
}

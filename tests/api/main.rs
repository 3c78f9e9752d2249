//! Integration tests: each starts the real server on a random port with a fresh database
//! and talks HTTP/WebSocket to it like a client would. One binary for all, so it links once.

mod db;
mod feed_support;
mod helpers;

mod backup;
mod browser;
mod browser_auth;
mod channel_data;
mod cli;
mod crash;
mod feed_access;
mod feeds;
mod health;
mod logs;
mod message_bulk;
mod message_status;
mod messages;
mod node_sdk;
mod node_sdk_messages;
mod node_sdk_recipients;
mod objects;
mod preference_delivery;
mod preferences;
mod python_sdk;
mod realtime;
mod realtime_auth;
mod realtime_limits;
mod retention;
mod tenants;
mod trigger;
mod unsupported;
mod upgrades;
mod users;
mod users_bulk;
mod users_rejected;
mod workflows;
mod workflows_cli;
mod ws;

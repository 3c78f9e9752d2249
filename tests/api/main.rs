//! Integration tests: each starts the real server on a random port with a fresh database
//! and talks HTTP/WebSocket to it like a client would. One binary for all, so it links once.

mod binary;
mod db;
mod feed_support;
mod helpers;

mod browser;
mod browser_auth;
mod browser_objects;
mod channel_data;
mod cli;
mod crash;
mod feed_access;
mod feeds;
mod hardening_auth;
mod hardening_engine;
mod hardening_limits;
mod hardening_sockets;
mod health;
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
mod run_records;
mod schedules;
mod subscriptions;
mod tenant_objects;
mod tenants;
mod trigger;
mod unsupported;
mod users;
mod users_bulk;
mod users_rejected;
mod workflows;
mod ws;

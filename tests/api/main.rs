//! Integration tests: each starts the real server on a random port with a fresh database
//! and talks HTTP/WebSocket to it like a client would. One binary for all, so it links once.

mod feed_support;
mod helpers;

mod channel_data;
mod feeds;
mod health;
mod messages;
mod objects;
mod preferences;
mod python_sdk;
mod tenants;
mod unsupported;
mod users;
mod users_bulk;
mod users_rejected;

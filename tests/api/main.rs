//! Integration tests: each starts the real server on a random port with a fresh database
//! and talks HTTP/WebSocket to it like a client would. One binary for all, so it links once.

mod db;
mod helpers;

mod crash;
mod health;
mod node_sdk;
mod trigger;
mod workflows;

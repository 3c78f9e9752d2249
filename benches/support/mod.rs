//! What the HTTP-driven benches share: the keys they start the server with and a small
//! client for the calls they all make (a secret-key request, a user's feed total, waiting
//! until the last recipients of a fan-out have their item). Not a bench itself: each bench
//! includes it with `#[path = "support/mod.rs"] mod support;`.

use std::time::{Duration, Instant};

use serde_json::Value;

/// The secret key every bench server is started with.
pub const SECRET: &str = "sk_bench";
/// The public key, for the benches that open sockets.
#[allow(dead_code)]
pub const PUBLIC: &str = "pk_bench";

/// A client for one bench server.
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
}

impl Api {
    pub fn new(port: u16) -> Self {
        Api {
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        }
    }

    /// Sends `body` with the secret key; panics unless the answer is a success (a bench
    /// whose setup failed must not print figures).
    pub async fn call(&self, method: reqwest::Method, path: &str, body: &Value) -> Value {
        let res = self
            .client
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(SECRET)
            .json(body)
            .send()
            .await
            .expect("request");
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// How many items `user`'s in-app feed holds.
    pub async fn feed_total(&self, user: &str) -> u64 {
        let res = self
            .client
            .get(format!("{}/v1/users/{user}/feeds/in-app-feed", self.base))
            .bearer_auth(SECRET)
            .send()
            .await
            .expect("feed");
        let body: Value = res.json().await.expect("feed json");
        body["meta"]["total_count"].as_u64().unwrap_or(0)
    }

    /// Waits until each of `users` has an item (the last recipients of their runs),
    /// polling every `poll`, for at most `timeout`; returns when the last one had it.
    pub async fn wait_for(&self, users: &[String], poll: Duration, timeout: Duration) -> Instant {
        let deadline = Instant::now() + timeout;
        for user in users {
            while self.feed_total(user).await == 0 {
                assert!(Instant::now() < deadline, "{user} never got its item");
                tokio::time::sleep(poll).await;
            }
        }
        Instant::now()
    }
}

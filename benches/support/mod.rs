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

    /// Sends `body` with the secret key; `Err` names the path and the answer unless it
    /// is a success (for a bench that reports its failure instead of panicking).
    pub async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> Result<Value, String> {
        let res = self
            .client
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(SECRET)
            .json(body)
            .send()
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(format!("{path}: {status} {body}"));
        }
        Ok(body)
    }

    /// [`Api::try_call`] that panics on a failure (a bench whose setup failed must not
    /// print figures).
    #[allow(dead_code)] // not every bench uses every helper
    pub async fn call(&self, method: reqwest::Method, path: &str, body: &Value) -> Value {
        self.try_call(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// How many items `user`'s in-app feed holds.
    pub async fn try_feed_total(&self, user: &str) -> Result<u64, String> {
        let path = format!("/v1/users/{user}/feeds/in-app-feed?page_size=1");
        let body = self
            .try_call(reqwest::Method::GET, &path, &Value::Null)
            .await?;
        Ok(body["meta"]["total_count"].as_u64().unwrap_or(0))
    }

    /// [`Api::try_feed_total`] that panics on a failure.
    #[allow(dead_code)] // not every bench uses every helper
    pub async fn feed_total(&self, user: &str) -> u64 {
        self.try_feed_total(user)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits until each of `users` has an item (the last recipients of their runs),
    /// polling every `poll`, for at most `timeout`; returns when the last one had it.
    #[allow(dead_code)] // not every bench uses every helper
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

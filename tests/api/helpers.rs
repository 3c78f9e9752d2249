//! Shared test helpers: `spawn_app`, authenticated request builders, token minting, and the
//! assertions many resources share (error shape, credential rejections, SDK scripts).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tidings::{Application, Settings};

pub const SECRET_KEY: &str = "sk_test_secret";
pub const PUBLIC_KEY: &str = "pk_test_public";

pub fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

pub fn signing_private_pem() -> String {
    std::fs::read_to_string(fixture("signing_key.pem")).expect("fixture signing key")
}

/// A running server and a client for it. The temp dir (and database) lives as long as this.
pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub db_path: PathBuf,
    pub workflows_dir: PathBuf,
    pub handle: actix_web::dev::ServerHandle,
    /// The server's state, for tests that observe internals (hub counters, store).
    pub state: actix_web::web::Data<tidings::state::AppState>,
    _dir: tempfile::TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Stop serving (the command is sent now; its completion is not awaited), so the
        // server lets go of its database connections.
        drop(self.handle.stop(false));
        self.state.store.close_now();
        if crate::engine::is_postgres() {
            crate::engine::drop_for(self._dir.path());
        }
    }
}

/// Settings every test server uses: port 0, a temp database (a SQLite file in `dir`, or
/// `dir`'s PostgreSQL schema when the suite runs on PostgreSQL), fixed keys.
pub fn test_settings(dir: &Path) -> Settings {
    let mut settings = Settings::for_database(dir.join("tidings.db"));
    if crate::engine::is_postgres() {
        settings.database_url = Some(crate::engine::url_for(dir));
        // Many servers run at once in the suite: keep each one's share of the
        // PostgreSQL server's connections small.
        settings.database_pool_size = 3;
        // One node name per database and short leases: a restarted server (another
        // TestApp on the same `dir`) takes its runs back at once.
        settings.node_id = crate::engine::schema_for(dir);
        settings.lease_secs = 2;
    }
    settings.workflows = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");
    settings.secret_key = Some(SECRET_KEY.into());
    settings.public_key = Some(PUBLIC_KEY.into());
    settings.signing_public_key =
        Some(std::fs::read_to_string(fixture("signing_key.pub.pem")).expect("fixture public key"));
    settings.workers = Some(2);
    settings
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a server after `customize` adjusts its settings.
pub async fn spawn_app_with(customize: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = test_settings(dir.path());
    customize(&mut settings);
    let db_path = settings.db.clone();
    let workflows_dir = settings.workflows.clone();
    let app = Application::build(settings).await.expect("server builds");
    let port = app.port();
    let handle = app.handle();
    let state = app.state();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        client: reqwest::Client::new(),
        db_path,
        workflows_dir,
        handle,
        state,
        _dir: dir,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// A request with the secret key.
    pub fn server(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(SECRET_KEY)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.server(reqwest::Method::GET, path)
    }

    pub fn put(&self, path: &str, body: Value) -> reqwest::RequestBuilder {
        self.server(reqwest::Method::PUT, path).json(&body)
    }

    pub fn post(&self, path: &str, body: Value) -> reqwest::RequestBuilder {
        self.server(reqwest::Method::POST, path).json(&body)
    }

    pub fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.server(reqwest::Method::DELETE, path)
    }

    /// A request as a browser: public key plus `user`'s token.
    pub fn as_user(
        &self,
        method: reqwest::Method,
        path: &str,
        user: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(PUBLIC_KEY)
            .header("x-knock-user-token", user_token(user, json!(null)))
    }

    /// Triggers `workflow` and returns the run id (asserting 200).
    pub async fn trigger(&self, workflow: &str, body: Value) -> String {
        let res = self
            .post(&format!("/v1/workflows/{workflow}/trigger"), body)
            .send()
            .await
            .expect("trigger sent");
        let status = res.status();
        let body: Value = res.json().await.expect("trigger answers JSON");
        assert_eq!(status, 200, "trigger failed: {body}");
        body["workflow_run_id"]
            .as_str()
            .expect("workflow_run_id")
            .to_owned()
    }

    /// Polls the feed until it holds `count` entries or ~10 s pass; returns the last body.
    /// Runs complete asynchronously, so tests wait on the observable result, not a sleep.
    pub async fn wait_for_feed(&self, user: &str, query: &str, count: usize) -> Value {
        let path = format!("/v1/users/{user}/feeds/in-app-feed?{query}");
        self.poll_json(&path, |body| {
            body["entries"].as_array().map_or(0, Vec::len) >= count
        })
        .await
    }

    /// GETs `path` with the secret key until `done(body)` or ~10 s pass; returns the last
    /// body, so the caller's assertions say what was missing.
    pub async fn poll_json(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let body: Value = self
                .get(path)
                .send()
                .await
                .expect("poll request")
                .json()
                .await
                .expect("poll JSON");
            if done(&body) || std::time::Instant::now() > deadline {
                return body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

impl TestApp {
    /// PUTs `props` to `path` with the secret key, asserts 200 and returns the body: how tests
    /// set up users, objects and tenants before exercising them.
    pub async fn put_ok(&self, path: &str, props: Value) -> Value {
        let (status, stored) = body(self.put(path, props).send().await.expect("put")).await;
        assert_eq!(status, 200, "PUT {path} failed: {stored}");
        stored
    }

    /// Identifies user `id` with `props` and asserts 200.
    pub async fn identify(&self, id: &str, props: Value) -> Value {
        self.put_ok(&format!("/v1/users/{id}"), props).await
    }

    /// GETs `path` with the secret key and returns the body (the error body if there is
    /// none), for before/after comparisons around rejected requests.
    pub async fn stored(&self, path: &str) -> Value {
        body(self.get(path).send().await.expect("get")).await.1
    }

    /// GETs `path` with the secret key; the status and the JSON body it must have.
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        json_of(self.get(path).send().await.expect("get")).await
    }

    /// PUTs `body` to `path` with the secret key; the status and the JSON body it must have.
    pub async fn put_json(&self, path: &str, body: Value) -> (u16, Value) {
        json_of(self.put(path, body).send().await.expect("put")).await
    }

    /// POSTs `body` to `path` with the secret key; the status and the JSON body it must have.
    pub async fn post_json(&self, path: &str, body: Value) -> (u16, Value) {
        json_of(self.post(path, body).send().await.expect("post")).await
    }

    /// The stored user `id` as the API shows it (or the 404 body).
    pub async fn stored_user(&self, id: &str) -> Value {
        self.stored(&format!("/v1/users/{id}")).await
    }
}

/// A response's status and JSON body (`Null` when the body is not JSON).
pub async fn body(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// A response's status and JSON body; a body that is not JSON fails the test.
pub async fn json_of(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    (status, res.json().await.expect("JSON body"))
}

/// Whether `v` is a timestamp in the wire format: ISO 8601 UTC with microseconds.
pub fn is_iso_micros(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 27 && s.ends_with('Z') && s.as_bytes()[19] == b'.')
}

/// Signs a user token with the test key, valid for an hour.
pub fn user_token(user: &str, grants: Value) -> String {
    sign_claims(json!({"sub": user, "iat": now(), "exp": now() + 3600, "grants": grants}))
}

pub fn sign_claims(claims: Value) -> String {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(signing_private_pem().as_bytes())
        .expect("test key");
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .expect("sign")
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Asserts a response is a Knock error with `status` and `code`; returns the body.
pub async fn assert_error(res: reqwest::Response, status: u16, code: &str) -> Value {
    let actual = res.status().as_u16();
    let body: Value = res.json().await.expect("error body is JSON");
    assert_eq!(actual, status, "unexpected status, body: {body}");
    assert_eq!(body["code"], code, "unexpected code, body: {body}");
    assert_eq!(body["status"], status, "body status mismatch: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "missing message: {body}"
    );
    assert!(body["type"].is_string(), "missing type: {body}");
    body
}

/// Sends `method path` (with `json` as the body, if any) with no key, then with an unknown
/// key, and asserts 401 `authentication_required` and 401 `api_key_missing`.
pub async fn assert_needs_a_valid_key(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    json: Option<&Value>,
) {
    let with_body = |req: reqwest::RequestBuilder| match json {
        Some(json) => req.json(json),
        None => req,
    };
    let no_key = with_body(app.client.request(method.clone(), app.url(path)));
    let res = no_key.send().await.expect("request without a key");
    assert_error(res, 401, "authentication_required").await;
    let unknown_key = with_body(app.client.request(method, app.url(path))).bearer_auth("sk_nope");
    let res = unknown_key
        .send()
        .await
        .expect("request with an unknown key");
    assert_error(res, 401, "api_key_missing").await;
}

/// Sends `method path` (with `json` as the body, if any) with the public key, alone and with
/// a valid user token, and asserts 403 `incorrect_token_type` both times: the endpoint is for
/// the secret key only, whatever the browser holds.
pub async fn assert_refuses_the_public_key(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    json: Option<&Value>,
) {
    let token = user_token("u1", Value::Null);
    for with_token in [false, true] {
        let mut req = app
            .client
            .request(method.clone(), app.url(path))
            .bearer_auth(PUBLIC_KEY);
        if with_token {
            req = req.header("x-knock-user-token", token.clone());
        }
        if let Some(json) = json {
            req = req.json(json);
        }
        let res = req.send().await.expect("request with the public key");
        assert_error(res, 403, "incorrect_token_type").await;
    }
}

/// The whole "secret key only" contract of one endpoint: no key and an unknown key are 401,
/// the public key (with or without a user token) is 403.
pub async fn assert_rejects_bad_credentials(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    json: Option<&Value>,
) {
    assert_needs_a_valid_key(app, method.clone(), path, json).await;
    assert_refuses_the_public_key(app, method, path, json).await;
}

/// `tests/js`, asserting the official node SDK is installed there: a missing SDK fails the
/// compatibility tests rather than skipping them.
pub fn installed_node_sdk() -> PathBuf {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    assert!(
        js.join("node_modules/@knocklabs/node/package.json")
            .is_file(),
        "the Knock node SDK is not installed: run `npm ci --prefix tests/js`"
    );
    js
}

impl TestApp {
    /// Runs an official-SDK script (`program script`) against this server with the SDKs'
    /// env vars set, off the runtime that serves it; asserts success and `expect_line` on
    /// stdout. A missing interpreter or dependency is a failure, never a skip.
    pub async fn run_sdk_script(&self, program: PathBuf, script: PathBuf, expect_line: &str) {
        let channel_id = self.channel_id().await;
        let base_url = self.address.clone();
        let dir = script.parent().map(Path::to_path_buf).unwrap_or_default();
        let shown = format!("{} {}", program.display(), script.display());
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new(&program)
                .arg(&script)
                .current_dir(dir)
                .env("KNOCK_API_KEY", SECRET_KEY)
                .env("KNOCK_BASE_URL", base_url)
                .env("TIDINGS_CHANNEL_ID", channel_id)
                .output()
        })
        .await
        .expect("join")
        .unwrap_or_else(|e| panic!("could not run `{shown}`: {e}"));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "`{shown}` failed ({}):\n{stdout}\n{stderr}",
            output.status
        );
        assert!(stdout.contains(expect_line), "{stdout}");
    }
}

//! `tidings workflows push`: upserts a validated knock-cli workflow directory into a
//! running server through its public `PUT /v1/workflows/{key}`, so a user's CI deploys
//! workflows the same way the API would accept them (same validation, same secret key).

use std::time::Duration;

use serde_json::{Value, json};

use crate::engine::loader::WorkflowFile;

/// How long one `PUT` may take before the push reports it as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a push could not be attempted or did not complete.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("--url {url}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("building the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("PUT {url}: {source}")]
    Request { url: String, source: reqwest::Error },
    #[error("{refused} of {total} workflow(s) were not pushed")]
    Refused { refused: usize, total: usize },
}

/// One workflow the server refused, with its answer, for the caller to print.
#[derive(Debug)]
pub struct Refusal<'a> {
    pub file: &'a WorkflowFile,
    pub status: u16,
    /// The server's Knock-shaped error body (`message`, and `errors` on a 422).
    pub body: Value,
}

/// Upserts each file into the server at `base_url` with `key`; `on_result` hears each
/// outcome as it happens (`Ok(status)` or the refusal). Fails on the first transport error,
/// or at the end when any workflow was refused.
pub async fn push<'a>(
    files: &'a [WorkflowFile],
    base_url: &str,
    key: &str,
    mut on_result: impl FnMut(&'a WorkflowFile, Result<u16, Refusal<'a>>),
) -> Result<(), PushError> {
    let bad_url = |reason: String| PushError::BadUrl {
        url: base_url.to_owned(),
        reason,
    };
    let base = url::Url::parse(base_url).map_err(|e| bad_url(e.to_string()))?;
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()?;
    let mut refused = 0;
    for file in files {
        let mut target = base.clone();
        target
            .path_segments_mut()
            .map_err(|()| bad_url("cannot be a base URL".to_owned()))?
            .pop_if_empty()
            .extend(["v1", "workflows", file.key.as_str()]);
        let response = client
            .put(target.clone())
            .bearer_auth(key)
            .json(&json!({ "workflow": file.body }))
            .send()
            .await
            .map_err(|source| PushError::Request {
                url: target.to_string(),
                source,
            })?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            on_result(file, Ok(status));
            continue;
        }
        refused += 1;
        let body: Value = response.json().await.unwrap_or_default();
        on_result(file, Err(Refusal { file, status, body }));
    }
    if refused > 0 {
        return Err(PushError::Refused {
            refused,
            total: files.len(),
        });
    }
    Ok(())
}

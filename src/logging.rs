//! Log setup: text for people or JSON lines for machines (`TIDINGS_LOG_FORMAT`), always on
//! stderr so stdout stays for what a command prints (tokens, keys). The level filter comes
//! from `TIDINGS_LOG` (default `info`).
//!
//! What is logged is decided where events are emitted; `api::access_log` documents why no
//! secret key, user token or body reaches a line. Text lines escape every value
//! (`text_fields`), so no value can forge a line or a field; JSON lines are escaped by JSON.

mod node_stamp;
mod text_fields;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::format as event_format;

use node_stamp::{NodeStamped, Shape};

use crate::config::LogFormat;

/// Dependencies whose debug/trace events echo request content (the HTML sanitizer logs
/// every text node it parses, i.e. rendered trigger data). Capped at `info` whatever the
/// operator's filter says, so even `TIDINGS_LOG=trace` never writes a body.
const CONTENT_ECHOING: &[&str] = &["html5ever", "markup5ever", "ammonia", "tendril"];

/// Installs the global subscriber; every line names `node` (the node id: several nodes'
/// logs are read side by side). Call once, first thing in `main`.
pub fn init(format: LogFormat, filter: Option<&str>, node: &str) {
    let mut filter = filter
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    for target in CONTENT_ECHOING {
        if let Ok(directive) = format!("{target}=info").parse() {
            filter = filter.add_directive(directive);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let node = node.to_owned();
    match format {
        // Colours only for a person at a terminal: a log file or journal gets plain text.
        LogFormat::Text => builder
            .fmt_fields(text_fields::SafeFields)
            .event_format(NodeStamped {
                inner: event_format().with_ansi(std::io::stderr().is_terminal()),
                node,
                shape: Shape::Text,
            })
            .init(),
        LogFormat::Json => builder
            .json()
            .event_format(NodeStamped {
                inner: event_format()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
                node,
                shape: Shape::Json,
            })
            .init(),
    }
}

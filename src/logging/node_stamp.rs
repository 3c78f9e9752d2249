//! Every log line names the node that wrote it (issue 20: `--node-id` "in logs"), so the
//! merged logs of several nodes say which one claimed a run, lost a lease or dropped a
//! socket.
//!
//! The id is a field of the line rather than a span: a span entered at start is not
//! seen on the runtime's worker threads. The inner formatter writes the line into a
//! buffer and the id is added to it: last in a text line (`… node=node-1`), first in a
//! JSON object (`{"node_id":"node-1",…}`). A node id is `A-Z a-z 0-9 . _ -` only
//! (`config::parse_node_id`), so it needs no escaping in either form.

use std::fmt::{self, Write as _};

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Where the node id goes in a line of the inner format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// A text line: ` node=<id>` before its newline.
    Text,
    /// A JSON object: `"node_id":"<id>"` as its first member.
    Json,
}

/// An event format that adds the node id to every line `inner` writes.
pub(super) struct NodeStamped<F> {
    pub(super) inner: F,
    pub(super) node: String,
    pub(super) shape: Shape,
}

impl<S, N, F> FormatEvent<S, N> for NodeStamped<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        writer.write_str(&stamp(&line, &self.node, self.shape))
    }
}

/// `line` (one formatted event, newline-terminated) with `node` added in `shape`'s place.
fn stamp(line: &str, node: &str, shape: Shape) -> String {
    let body = line.strip_suffix('\n').unwrap_or(line);
    let mut out = String::with_capacity(line.len() + node.len() + 16);
    match (shape, body.strip_prefix('{')) {
        (Shape::Json, Some(members)) => {
            let _ = write!(out, "{{\"node_id\":\"{node}\"");
            if members.trim_start() != "}" {
                out.push(',');
            }
            out.push_str(members);
        }
        _ => {
            let _ = write!(out, "{body} node={node}");
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_line_ends_with_the_node() {
        assert_eq!(
            stamp(
                "2026-12-06T21:00:00Z  INFO tidings: listening addr=1\n",
                "n-1",
                Shape::Text
            ),
            "2026-12-06T21:00:00Z  INFO tidings: listening addr=1 node=n-1\n"
        );
    }

    #[test]
    fn a_json_line_starts_with_the_node_and_stays_json() {
        let line = stamp(r#"{"level":"INFO","message":"hi"}"#, "n-1", Shape::Json);
        let parsed: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(parsed["node_id"], "n-1");
        assert_eq!(parsed["message"], "hi");
        let empty: serde_json::Value =
            serde_json::from_str(&stamp("{}\n", "n-1", Shape::Json)).expect("json");
        assert_eq!(empty, serde_json::json!({"node_id": "n-1"}));
    }
}

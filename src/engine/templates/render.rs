//! Rendering: one recipient's blocks, written straight as JSON text, each Liquid field into
//! a capped buffer and finished (sanitized HTML, safe URLs, escaped labels).

use serde_json::Value;

use super::compile::first_line;
use super::memo::{LazyScope, PartMemo, TemplateMemo, part};
use super::sanitize::{markdown_to_safe_html, safe_url};
use super::{InAppTemplate, MAX_HTML_TAGS, MAX_RENDERED_BYTES, Part, RenderError};
use crate::engine::scope::{Reads, Scope};
use crate::model::message::Blocks;

impl InAppTemplate {
    /// Renders the feed blocks for one recipient.
    pub fn render(&self, scope: &Scope<'_>) -> Result<Blocks, RenderError> {
        let lazy = LazyScope::new(|| Scope::new(&Value::Null), |_| true);
        lazy.scope.get_or_init(|| LazyScope::borrowed(scope));
        self.render_memo(&lazy, &mut TemplateMemo::default())
            .map(|(blocks, _)| blocks)
    }

    /// Renders the feed blocks for one recipient of a run, reusing from `memo` (the run's
    /// memo for this step) every part that cannot differ for this recipient, and keeping
    /// there what this render found shareable. The scope is only built when some part is
    /// rendered. Also says whether this recipient's blocks came whole from the memo: then
    /// they are the memo's [`Blocks`] themselves (shared, with their JSON), not a copy.
    pub fn render_memo(
        &self,
        scope: &LazyScope<'_>,
        memo: &mut TemplateMemo,
    ) -> Result<(Blocks, bool), RenderError> {
        if let Some((reads, blocks)) = &memo.blocks
            && !reads.touches(&scope.is_own)
        {
            return Ok((blocks.clone(), true));
        }
        let mut all = Some(Reads::default());
        let rendered = Blocks::from_json(self.render_parts(scope, memo, &mut all)?);
        if let Some(reads) = all {
            memo.blocks = Some((reads, rendered.clone()));
        }
        Ok((rendered, false))
    }

    /// The blocks' JSON text, written directly (no `serde_json::Value` per recipient):
    /// exactly what `serde_json::to_string` writes for
    /// `[{"name": "body", "type": "markdown", "content", "rendered"},
    ///   {"name": "action_url", "type": "text", "content", "rendered"}?,
    ///   {"name": "actions", "type": "button_set", "buttons": [{"name", "label", "action"}]}?]`
    /// (object keys in sorted order, strings escaped by `serde_json`).
    fn render_parts(
        &self,
        scope: &LazyScope<'_>,
        memo: &mut TemplateMemo,
        all: &mut Option<Reads>,
    ) -> Result<String, RenderError> {
        if memo.parts.is_empty() {
            let parts = 1 + usize::from(self.action_url.is_some()) + 2 * self.buttons.len();
            memo.parts = vec![PartMemo::Unknown; parts];
        }
        let mut slots = memo.parts.iter_mut();
        let mut next = || {
            slots.next().ok_or_else(|| RenderError {
                field: "template".into(),
                message: "the run's render memo does not match its template".into(),
            })
        };
        let rendered = part(
            &self.body,
            "markdown_body",
            scope,
            next()?,
            all,
            |markdown| {
                markdown_to_safe_html(&markdown).map_err(|tags| RenderError {
                    field: "markdown_body".into(),
                    message: format!(
                        "the rendered body holds {tags} HTML tags; the limit is {MAX_HTML_TAGS}"
                    ),
                })
            },
        )?;
        let mut out: Vec<u8> = Vec::with_capacity(
            96 + self.body.source_json.len()
                + rendered.len() * 5 / 4
                + self
                    .action_url
                    .as_ref()
                    .map_or(0, |u| u.source_json.len() + 128),
        );
        out.extend_from_slice(br#"[{"content":"#);
        out.extend_from_slice(self.body.source_json.as_bytes());
        out.extend_from_slice(br#","name":"body","rendered":"#);
        push_json_string(&mut out, &rendered);
        out.extend_from_slice(br#","type":"markdown"}"#);
        if let Some(url) = &self.action_url {
            let rendered = part(url, "action_url", scope, next()?, all, |u| Ok(safe_url(&u)))?;
            out.extend_from_slice(br#",{"content":"#);
            out.extend_from_slice(url.source_json.as_bytes());
            out.extend_from_slice(br#","name":"action_url","rendered":"#);
            push_json_string(&mut out, &rendered);
            out.extend_from_slice(br#","type":"text"}"#);
        }
        if !self.buttons.is_empty() {
            out.extend_from_slice(br#",{"buttons":["#);
            for (i, b) in self.buttons.iter().enumerate() {
                // Labels are text: markup from data is escaped, never rendered.
                let label = part(&b.label, "action_buttons.label", scope, next()?, all, |l| {
                    Ok(html_escape::encode_text(l.trim()).into_owned())
                })?;
                let action = part(
                    &b.action,
                    "action_buttons.action",
                    scope,
                    next()?,
                    all,
                    |a| Ok(safe_url(&a)),
                )?;
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(br#"{"action":"#);
                push_json_string(&mut out, &action);
                out.extend_from_slice(br#","label":"#);
                push_json_string(&mut out, &label);
                out.extend_from_slice(if i == 0 {
                    br#","name":"primary"}"#
                } else {
                    br#","name":"secondary"}"#
                });
            }
            out.extend_from_slice(br#"],"name":"actions","type":"button_set"}"#);
        }
        out.push(b']');
        String::from_utf8(out).map_err(|e| RenderError {
            field: "template".into(),
            message: e.to_string(),
        })
    }
}

/// `s` as a JSON string literal, escaped as `serde_json` escapes it.
pub(super) fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// Appends `s` as a JSON string literal: `serde_json`'s own escaping, so the text is what
/// serializing a `Value` holding `s` writes. (Writing into a `Vec` cannot fail.)
fn push_json_string(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(out, s);
}

/// Renders one Liquid field into a buffer that refuses to grow past
/// [`MAX_RENDERED_BYTES`], so an oversized render stops there instead of finishing.
pub(super) fn render_part(
    part: &Part,
    scope: &Scope<'_>,
    field: &str,
) -> Result<String, RenderError> {
    let mut out = CappedBuffer(Vec::new());
    match part.compiled.render_to(&mut out, scope.as_object()) {
        Ok(()) => Ok(String::from_utf8_lossy(&out.0).into_owned()),
        Err(_) if out.0.len() >= MAX_RENDERED_BYTES => Err(RenderError {
            field: field.to_owned(),
            message: format!("rendered to more than {MAX_RENDERED_BYTES} bytes, the limit"),
        }),
        Err(e) => Err(RenderError {
            field: field.to_owned(),
            message: first_line(&e.to_string()).to_owned(),
        }),
    }
}

/// A `Write` that fails once it would hold more than [`MAX_RENDERED_BYTES`].
struct CappedBuffer(Vec<u8>);

impl std::io::Write for CappedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_RENDERED_BYTES {
            self.0.resize(MAX_RENDERED_BYTES, 0);
            return Err(std::io::Error::other("rendered output over the limit"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::templates::test_support::{render, template};
    use serde_json::json;

    /// The blocks' text is what serializing the blocks as a `serde_json::Value` (the
    /// shape built before the text was written directly) gives, byte for byte.
    #[test]
    fn blocks_text_is_the_values_serialization() {
        let data = json!({"name": "A \"quoted\" \\ name\u{1}\u{7f} é 🎉 </script>",
                          "url": "https://x.y/?a=1&b=\"2\"", "n": 3});
        type Case<'a> = (&'a str, Option<&'a str>, &'a [(&'a str, &'a str)]);
        let cases: [Case<'_>; 5] = [
            ("Hi **{{ data.name }}**", None, &[]),
            (
                "{{ data.name }}\n\n* \"item\"\t\\",
                Some("{{ data.url }}"),
                &[],
            ),
            ("x", None, &[("Go {{ data.name }}", "{{ data.url }}")]),
            (
                "<b>{{ data.n }}</b> `c` \u{2028}",
                Some("/later?x={{ data.n }}"),
                &[("One", "/1"), ("Two \"{{ data.name }}\"", "{{ data.url }}")],
            ),
            ("", Some(""), &[("", "")]),
        ];
        for (body, url, buttons) in cases {
            let t = template(body, url, buttons);
            let blocks = render(&t, data.clone());
            let text = blocks.json().expect("text").to_owned();
            let parsed: Value = serde_json::from_str(&text).expect("valid JSON");
            let mut expected = vec![json!({
                "name": "body",
                "type": "markdown",
                "content": body,
                "rendered": parsed[0]["rendered"],
            })];
            if let Some(url) = url {
                expected.push(json!({
                    "name": "action_url",
                    "type": "text",
                    "content": url,
                    "rendered": parsed[1]["rendered"],
                }));
            }
            if !buttons.is_empty() {
                let at = expected.len();
                let buttons: Vec<Value> = (0..buttons.len())
                    .map(|i| {
                        json!({
                            "name": if i == 0 { "primary" } else { "secondary" },
                            "label": parsed[at]["buttons"][i]["label"],
                            "action": parsed[at]["buttons"][i]["action"],
                        })
                    })
                    .collect();
                expected.push(json!({"name": "actions", "type": "button_set", "buttons": buttons}));
            }
            let expected = Value::Array(expected);
            assert_eq!(text, serde_json::to_string(&expected).expect("serialize"));
            assert_eq!(*blocks, expected);
        }
    }

    #[test]
    fn body_renders_markdown_with_data() {
        let t = template("Hi **{{ data.name }}**", None, &[]);
        let blocks = render(&t, json!({"name": "Ellie"}));
        assert_eq!(blocks[0]["name"], "body");
        assert_eq!(blocks[0]["type"], "markdown");
        assert_eq!(blocks[0]["content"], "Hi **{{ data.name }}**");
        assert_eq!(
            blocks[0]["rendered"].as_str().map(str::trim),
            Some("<p>Hi <strong>Ellie</strong></p>")
        );
        assert_eq!(blocks.as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn script_tags_from_data_are_removed() {
        let t = template("Comment: {{ data.text }}", None, &[]);
        let blocks = render(
            &t,
            json!({"text": "<script>alert(1)</script><img src=x onerror=alert(2)>ok"}),
        );
        let html = blocks[0]["rendered"].as_str().unwrap_or_default();
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("onerror"), "{html}");
        assert!(!html.contains("alert(1)"), "{html}");
        assert!(html.contains("ok"), "{html}");
    }

    #[test]
    fn javascript_links_from_data_are_neutralized_everywhere() {
        let t = template(
            "[open]({{ data.url }}) <a href=\"{{ data.url }}\">x</a>",
            Some("{{ data.url }}"),
            &[("Go", "{{ data.url }}")],
        );
        for url in [
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            " java\tscript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "vbscript:msgbox",
            "javascript&colon;alert(1)",
            "jav&#x09;ascript:alert(1)",
            "jav&#9;ascript:alert(1)",
            "&#106;avascript:alert(1)",
            "java\u{0}script:alert(1)",
            "\u{1}javascript:alert(1)",
            "tel:+15555550100",
        ] {
            let blocks = render(&t, json!({"url": url}));
            let html = blocks[0]["rendered"].as_str().unwrap_or_default();
            for href in html.split("href=\"").skip(1) {
                let value = href.split('"').next().unwrap_or_default();
                // A browser reads a scheme only as `[A-Za-z][A-Za-z0-9+.-]*:`; anything
                // else (e.g. `jav%09ascript:`) is a relative URL.
                let scheme = value.split_once(':').map(|(s, _)| s).filter(|s| {
                    s.starts_with(|c: char| c.is_ascii_alphabetic())
                        && s.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
                });
                assert!(
                    scheme.is_none_or(|s| ["http", "https", "mailto", "tel"].contains(&s)),
                    "unsafe href {value} in {html}"
                );
            }
            assert_eq!(blocks[1]["rendered"], "", "action_url for {url}");
            assert_eq!(blocks[2]["buttons"][0]["action"], "", "button for {url}");
        }
    }

    #[test]
    fn deeply_nested_html_from_data_fails_the_render_quickly() {
        let t = template("{{ data.text }}", None, &[]);
        let started = std::time::Instant::now();
        let result = t.render(&Scope::new(
            &json!({"data": {"text": "<div>".repeat(40_000)}}),
        ));
        let error = result.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("rendered to more than"), "{error}");
        let result = t.render(&Scope::new(
            &json!({"data": {"text": "<div>".repeat(5_000)}}),
        ));
        let error = result.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("HTML tags"), "{error}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        let ok = t.render(&Scope::new(
            &json!({"data": {"text": "<div>".repeat(1_000)}}),
        ));
        assert!(ok.is_ok());
    }

    #[test]
    fn button_labels_are_escaped_text() {
        let t = template("x", None, &[("{{ data.label }}", "/go")]);
        let blocks = render(&t, json!({"label": "<img src=x onerror=alert(1)>Go"}));
        assert_eq!(
            blocks[1]["buttons"][0]["label"],
            "&lt;img src=x onerror=alert(1)&gt;Go"
        );
    }

    #[test]
    fn safe_links_and_buttons_are_kept() {
        let t = template(
            "[open]({{ data.url }})",
            Some("{{ data.url }}"),
            &[("View {{ data.n }}", "{{ data.url }}"), ("Later", "/later")],
        );
        let blocks = render(&t, json!({"url": "https://example.com/a?b=1", "n": 2}));
        assert!(
            blocks[0]["rendered"]
                .as_str()
                .unwrap_or_default()
                .contains("href=\"https://example.com/a?b=1\"")
        );
        assert_eq!(blocks[1]["name"], "action_url");
        assert_eq!(blocks[1]["type"], "text");
        assert_eq!(blocks[1]["rendered"], "https://example.com/a?b=1");
        assert_eq!(blocks[2]["name"], "actions");
        assert_eq!(blocks[2]["type"], "button_set");
        assert_eq!(
            blocks[2]["buttons"],
            json!([
                {"name": "primary", "label": "View 2", "action": "https://example.com/a?b=1"},
                {"name": "secondary", "label": "Later", "action": "/later"}
            ])
        );
    }
}

//! In-app templates: Liquid compiled once per workflow version, rendered per recipient
//! into Knock's feed `blocks` (§3.6): `body` (markdown → sanitized HTML), `action_url`
//! (text) and `actions` (button set).
//!
//! Invariant: every HTML string this module produces has passed through `ammonia`, and
//! every URL it produces has a safe scheme, so values from trigger `data` can never inject
//! script into a browser that renders `blocks[*].rendered` with `innerHTML`.

use std::sync::OnceLock;

use serde_json::{Value, json};

use super::scope::Scope;
use crate::error::FieldError;
use crate::model::workflow::InAppTemplateSource;

/// One Liquid field: its source (shown as block `content`) and its compiled form.
struct Part {
    source: String,
    compiled: liquid::Template,
}

struct Button {
    label: Part,
    action: Part,
}

/// A compiled in-app feed template.
pub struct InAppTemplate {
    body: Part,
    action_url: Option<Part>,
    buttons: Vec<Button>,
}

/// Largest output of one template field (Liquid, before markdown): beyond it the step
/// fails with a recorded reason rather than storing and pushing megabytes per recipient.
pub const MAX_RENDERED_BYTES: usize = 64 * 1024;
/// Most HTML tags a rendered body may hold. The HTML sanitizer's tree builder costs
/// O(depth) per open element (the spec's "in scope" checks), so `<div>` × n is O(n²);
/// 2,000 tags bound that to milliseconds while leaving any real message far below.
pub const MAX_HTML_TAGS: usize = 2_000;

/// A template that failed while rendering (Liquid runtime errors such as bad filters).
#[derive(Debug, thiserror::Error)]
#[error("rendering `{field}` failed: {message}")]
pub struct RenderError {
    pub field: String,
    pub message: String,
}

fn parser() -> &'static liquid::Parser {
    static PARSER: OnceLock<liquid::Parser> = OnceLock::new();
    PARSER.get_or_init(|| {
        liquid::ParserBuilder::with_stdlib()
            .build()
            .unwrap_or_else(|_| liquid::Parser::new())
    })
}

fn compile_part(source: &str, field: String, errors: &mut Vec<FieldError>) -> Option<Part> {
    match parser().parse(source) {
        Ok(compiled) => Some(Part {
            source: source.to_owned(),
            compiled,
        }),
        Err(e) => {
            errors.push(FieldError::new(
                field,
                format!("is not valid Liquid: {}", first_line(&e.to_string())),
            ));
            None
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s).trim()
}

impl InAppTemplate {
    /// Compiles every Liquid field; errors name the field under `prefix` (e.g.
    /// `workflow.steps[0].template`).
    pub fn compile(src: &InAppTemplateSource, prefix: &str) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let body = compile_part(
            &src.markdown_body,
            format!("{prefix}.markdown_body"),
            &mut errors,
        );
        let action_url = src
            .action_url
            .as_deref()
            .map(|s| compile_part(s, format!("{prefix}.action_url"), &mut errors));
        let mut buttons = Vec::new();
        for (i, b) in src.action_buttons.iter().enumerate() {
            let label = compile_part(
                &b.label,
                format!("{prefix}.action_buttons[{i}].label"),
                &mut errors,
            );
            let action = compile_part(
                &b.action,
                format!("{prefix}.action_buttons[{i}].action"),
                &mut errors,
            );
            if let (Some(label), Some(action)) = (label, action) {
                buttons.push(Button { label, action });
            }
        }
        match (body, action_url) {
            (Some(body), None) if errors.is_empty() => Ok(InAppTemplate {
                body,
                action_url: None,
                buttons,
            }),
            (Some(body), Some(Some(url))) if errors.is_empty() => Ok(InAppTemplate {
                body,
                action_url: Some(url),
                buttons,
            }),
            _ => Err(errors),
        }
    }

    /// Renders the feed blocks for one recipient.
    pub fn render(&self, scope: &Scope) -> Result<Value, RenderError> {
        let markdown = render_part(&self.body, scope, "markdown_body")?;
        let rendered = markdown_to_safe_html(&markdown).map_err(|tags| RenderError {
            field: "markdown_body".into(),
            message: format!(
                "the rendered body holds {tags} HTML tags; the limit is {MAX_HTML_TAGS}"
            ),
        })?;
        let mut blocks = vec![json!({
            "name": "body",
            "type": "markdown",
            "content": self.body.source,
            "rendered": rendered,
        })];
        if let Some(url) = &self.action_url {
            let rendered = render_part(url, scope, "action_url")?;
            blocks.push(json!({
                "name": "action_url",
                "type": "text",
                "content": url.source,
                "rendered": safe_url(&rendered),
            }));
        }
        if !self.buttons.is_empty() {
            let mut buttons = Vec::with_capacity(self.buttons.len());
            for (i, b) in self.buttons.iter().enumerate() {
                let label = render_part(&b.label, scope, "action_buttons.label")?;
                let action = render_part(&b.action, scope, "action_buttons.action")?;
                buttons.push(json!({
                    "name": if i == 0 { "primary" } else { "secondary" },
                    // Labels are text: markup from data is escaped, never rendered.
                    "label": html_escape::encode_text(label.trim()),
                    "action": safe_url(&action),
                }));
            }
            blocks.push(json!({"name": "actions", "type": "button_set", "buttons": buttons}));
        }
        Ok(Value::Array(blocks))
    }
}

/// Renders one Liquid field into a buffer that refuses to grow past
/// [`MAX_RENDERED_BYTES`], so an oversized render stops there instead of finishing.
fn render_part(part: &Part, scope: &Scope, field: &str) -> Result<String, RenderError> {
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

/// Markdown → HTML, then sanitized: raw HTML from templates or data (`<script>`, event
/// handler attributes, `javascript:` links) is removed; formatting and safe links stay.
/// `Err(tags)` when the HTML holds more than [`MAX_HTML_TAGS`] tags (counted in linear
/// time before the sanitizer, whose cost grows with nesting depth, ever sees it).
pub fn markdown_to_safe_html(markdown: &str) -> Result<String, usize> {
    use pulldown_cmark::{Options, Parser, html};
    let options = Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES;
    let mut html_out = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut html_out, Parser::new_ext(markdown, options));
    // Text `<` is escaped to `&lt;` by the markdown renderer: every `<` left opens a tag.
    let tags = html_out.bytes().filter(|b| *b == b'<').count();
    if tags > MAX_HTML_TAGS {
        return Err(tags);
    }
    Ok(ammonia::clean(&html_out))
}

/// The URL a browser would follow for `url`, when it is relative or uses `http`, `https`
/// or `mailto`; anything else (`javascript:`, `data:`, `vbscript:`, `tel:`) becomes the
/// empty string.
///
/// A client may put the value into an `href` attribute, where the browser decodes HTML
/// entities (`javascript&colon;`, `jav&#x09;ascript:`) and ignores tabs and newlines
/// anywhere in the URL. So the check runs on what the browser will see — entities
/// decoded, control characters removed, surrounding spaces trimmed — and that cleaned
/// URL is what is returned.
pub fn safe_url(url: &str) -> String {
    let decoded = html_escape::decode_html_entities(url);
    let cleaned: String = decoded.chars().filter(|c| !c.is_control()).collect();
    let cleaned = cleaned.trim_matches(|c: char| c.is_whitespace());
    let scheme_end = cleaned.find(':');
    let path_start = cleaned.find(['/', '?', '#']);
    let scheme = match (scheme_end, path_start) {
        (Some(colon), Some(slash)) if slash < colon => None,
        (Some(colon), _) => Some(cleaned[..colon].to_ascii_lowercase()),
        (None, _) => None,
    };
    match scheme.as_deref() {
        None | Some("http" | "https" | "mailto") => cleaned.to_owned(),
        Some(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::workflow::ButtonSource;

    fn template(body: &str, url: Option<&str>, buttons: &[(&str, &str)]) -> InAppTemplate {
        let src = InAppTemplateSource {
            markdown_body: body.into(),
            action_url: url.map(str::to_owned),
            action_buttons: buttons
                .iter()
                .map(|(l, a)| ButtonSource {
                    label: (*l).into(),
                    action: (*a).into(),
                })
                .collect(),
        };
        match InAppTemplate::compile(&src, "template") {
            Ok(t) => t,
            Err(e) => panic!("compile failed: {e:?}"),
        }
    }

    fn render(t: &InAppTemplate, data: Value) -> Value {
        match t.render(&Scope::new(&json!({"data": data}))) {
            Ok(v) => v,
            Err(e) => panic!("render failed: {e}"),
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
    fn safe_urls_are_returned_as_a_browser_reads_them() {
        assert_eq!(
            safe_url(" https://example.com/a?b=1&amp;c=2 "),
            "https://example.com/a?b=1&c=2"
        );
        assert_eq!(safe_url("mailto:a@b.com"), "mailto:a@b.com");
        assert_eq!(safe_url("/later#x"), "/later#x");
        assert_eq!(safe_url("later"), "later");
        assert_eq!(safe_url("ht\ttps://example.com"), "https://example.com");
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

    #[test]
    fn invalid_liquid_is_reported_per_field() {
        let src = InAppTemplateSource {
            markdown_body: "{% if %}".into(),
            action_url: Some("{{ data.url ".into()),
            action_buttons: vec![],
        };
        let errors = InAppTemplate::compile(&src, "workflow.steps[0].template")
            .err()
            .unwrap_or_default();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "workflow.steps[0].template.markdown_body",
                "workflow.steps[0].template.action_url"
            ]
        );
    }
}

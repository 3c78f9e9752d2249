//! In-app templates: Liquid compiled once per workflow version, rendered per recipient
//! into Knock's feed `blocks` (§3.6): `body` (markdown → sanitized HTML), `action_url`
//! (text) and `actions` (button set).
//!
//! Invariant: every HTML string this module produces has passed through `ammonia`, and
//! every URL it produces has a safe scheme, so values from trigger `data` can never inject
//! script into a browser that renders `blocks[*].rendered` with `innerHTML`.
//!
//! Rendering once per run ([`InAppTemplate::render_memo`]): a run's recipients share most
//! of their scope (`data`, `actor`, `tenant`, `vars`, `workflow`); only a few top-level
//! names are the recipient's own (`recipient`, `timestamp`, `current_message`, and `data`
//! when it carries `$trigger_data`, batch variables after a batch). A part is rendered
//! with the scope recording its top-level lookups (`scope::Reads`: every lookup of the
//! render, in output, tags and filter arguments alike); when none of them is one of the recipient's
//! own names, its output — or its error — is kept in the run's [`TemplateMemo`] and
//! reused for every later recipient whose own names it did not read either. A part that
//! read the recipient (or the whole scope) is rendered per recipient from then on.
//! Rendering is deterministic in what it reads, so the reused output is what rendering
//! would have produced (filters reading the clock, `"now" | date`, see the instant of
//! the run's first render instead of each recipient's).

use std::cell::OnceCell;
use std::sync::OnceLock;

use serde_json::Value;

use super::scope::{Reads, Scope};
use crate::error::FieldError;
use crate::model::message::Blocks;
use crate::model::workflow::InAppTemplateSource;

/// One Liquid field: its source as a JSON string (the block's `content`, the same for
/// every recipient) and its compiled form.
struct Part {
    source_json: String,
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
#[derive(Debug, Clone, thiserror::Error)]
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
            source_json: json_string(source),
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
fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// Appends `s` as a JSON string literal: `serde_json`'s own escaping, so the text is what
/// serializing a `Value` holding `s` writes. (Writing into a `Vec` cannot fail.)
fn push_json_string(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(out, s);
}

/// One recipient's render scope, built on first use, and which top-level names are the
/// recipient's own (differ between the run's recipients).
pub struct LazyScope<'a> {
    build: Box<dyn Fn() -> ScopeRef<'a> + 'a>,
    scope: OnceCell<ScopeRef<'a>>,
    is_own: Box<dyn Fn(&str) -> bool + 'a>,
}

/// A scope built for this render, or one the caller already had.
enum ScopeRef<'a> {
    Built(Scope<'a>),
    Borrowed(&'a Scope<'a>),
}

impl<'a> LazyScope<'a> {
    pub fn new(build: impl Fn() -> Scope<'a> + 'a, is_own: impl Fn(&str) -> bool + 'a) -> Self {
        LazyScope {
            build: Box::new(move || ScopeRef::Built(build())),
            scope: OnceCell::new(),
            is_own: Box::new(is_own),
        }
    }

    fn borrowed(scope: &'a Scope<'a>) -> ScopeRef<'a> {
        ScopeRef::Borrowed(scope)
    }

    fn get(&self) -> &Scope<'a> {
        match self.scope.get_or_init(|| (self.build)()) {
            ScopeRef::Built(s) => s,
            ScopeRef::Borrowed(s) => s,
        }
    }
}

/// A run's memo for one step's template: whole blocks, and each Liquid part.
#[derive(Default)]
pub struct TemplateMemo {
    /// The blocks, when every part was shareable: with the names they read.
    blocks: Option<(Reads, Blocks)>,
    /// Per part, in render order (body, action URL, each button's label and action).
    parts: Vec<PartMemo>,
}

#[derive(Clone)]
enum PartMemo {
    /// Not rendered shareably yet.
    Unknown,
    /// Rendered from names no recipient had as its own then: the final output (or error).
    Shared {
        reads: Reads,
        out: Result<String, RenderError>,
    },
    /// Read the recipient (or the whole scope): rendered per recipient.
    PerRecipient,
}

/// Top-level names every recipient's scope holds itself (`walk` builds them per
/// message): a part that reads one is rendered per recipient.
pub const RECIPIENT_NAMES: &[&str] = &["recipient", "timestamp", "current_message"];

/// Renders one part (Liquid, then `finish`) or reuses it from `memo`; `all` collects the
/// reads of the whole template while every part so far was shareable (else `None`).
fn part(
    part: &Part,
    field: &str,
    scope: &LazyScope<'_>,
    memo: &mut PartMemo,
    all: &mut Option<Reads>,
    finish: impl FnOnce(String) -> Result<String, RenderError>,
) -> Result<String, RenderError> {
    if let PartMemo::Shared { reads, out } = &*memo
        && !reads.touches(&scope.is_own)
    {
        merge_reads(all, reads);
        return out.clone();
    }
    if matches!(memo, PartMemo::PerRecipient) {
        *all = None;
        return render_part(part, scope.get(), field).and_then(finish);
    }
    let s = scope.get();
    s.record();
    let raw = render_part(part, s, field);
    let reads = s.take_reads();
    let out = raw.and_then(finish);
    if !reads.touches(&scope.is_own) {
        merge_reads(all, &reads);
        *memo = PartMemo::Shared {
            reads,
            out: out.clone(),
        };
    } else {
        *all = None;
        if reads.touches(|n| RECIPIENT_NAMES.contains(&n)) {
            *memo = PartMemo::PerRecipient;
        }
    }
    out
}

fn merge_reads(all: &mut Option<Reads>, reads: &Reads) {
    if let Some(all) = all {
        all.everything |= reads.everything;
        for name in &reads.names {
            if !all.names.contains(name) {
                all.names.push(name.clone());
            }
        }
    }
}

/// Renders one Liquid field into a buffer that refuses to grow past
/// [`MAX_RENDERED_BYTES`], so an oversized render stops there instead of finishing.
fn render_part(part: &Part, scope: &Scope<'_>, field: &str) -> Result<String, RenderError> {
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
    use pulldown_cmark::{Event, Options, Parser, html};
    let options = Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES;
    let mut html_out = String::with_capacity(markdown.len() * 3 / 2);
    let mut raw_html = false;
    let events = Parser::new_ext(markdown, options).inspect(|e| {
        raw_html |= matches!(e, Event::Html(_) | Event::InlineHtml(_));
    });
    html::push_html(&mut html_out, events);
    // Text `<` is escaped to `&lt;` by the markdown renderer: every `<` left opens a tag.
    let tags = html_out.bytes().filter(|b| *b == b'<').count();
    if tags > MAX_HTML_TAGS {
        return Err(tags);
    }
    // Without raw HTML every tag is the renderer's own, nested as it nests them.
    if !raw_html && is_sanitized_already(&html_out) {
        return Ok(html_out);
    }
    Ok(ammonia::clean(&html_out))
}

/// Tags the markdown renderer writes without attributes, which the sanitizer keeps as
/// they are (and its HTML parser does not restructure as the renderer nests them).
const PLAIN_TAGS: &[&str] = &[
    "p",
    "strong",
    "em",
    "del",
    "code",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "ul",
    "li",
    "blockquote",
];

/// Whether `html`, written by the markdown renderer from markdown without raw HTML, is
/// exactly what `ammonia::clean` would return for it, so the sanitizer
/// (parsing into a DOM and serializing it again: ~60% of rendering a short body) can be
/// skipped: every tag is one of [`PLAIN_TAGS`] with no attribute, every `&` starts
/// `&amp;`, `&lt;` or `&gt;` (the renderer's only escapes in text, and the serializer's),
/// and no character is one the parser or serializer rewrites (CR, NUL and other
/// controls, no-break space, byte-order mark, non-characters). Anything else — raw HTML,
/// links, images, code blocks, tables, line breaks — goes through the sanitizer. Its
/// output can hold no attribute and no tag outside that list, so nothing executable.
fn is_sanitized_already(html: &str) -> bool {
    let bytes = html.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'<' => {
                let Some(len) = html[i..].find('>') else {
                    return false;
                };
                let tag = &html[i + 1..i + len];
                let name = tag.strip_prefix('/').unwrap_or(tag);
                if !PLAIN_TAGS.contains(&name) {
                    return false;
                }
                i += len + 1;
            }
            b'&' => {
                let rest = &html[i..];
                let Some(entity) = ["&amp;", "&lt;", "&gt;"]
                    .into_iter()
                    .find(|e| rest.starts_with(e))
                else {
                    return false;
                };
                i += entity.len();
            }
            b'>' | b'"' | b'\r' | 0 => return false,
            b'\n' | b'\t' | b' '..=b'~' => i += 1,
            _ => {
                let Some(c) = html[i..].chars().next() else {
                    return false;
                };
                let rewritten = c.is_control()
                    || matches!(c, '\u{a0}' | '\u{feff}' | '\u{fdd0}'..='\u{fdef}')
                    || (u32::from(c) & 0xfffe) == 0xfffe;
                if rewritten {
                    return false;
                }
                i += c.len_utf8();
            }
        }
    }
    true
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
    use serde_json::json;

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

    fn render(t: &InAppTemplate, data: Value) -> Blocks {
        match t.render(&Scope::new(&json!({"data": data}))) {
            Ok(v) => v,
            Err(e) => panic!("render failed: {e}"),
        }
    }

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

    /// Renders `t` for a recipient named `name` (with `own_data` as `$trigger_data`
    /// when given) through the run memo; returns the blocks, whether they came whole
    /// from the memo, and whether the recipient's scope had to be built.
    fn render_for(
        t: &InAppTemplate,
        memo: &mut TemplateMemo,
        name: &str,
        own_data: Option<Value>,
    ) -> (Blocks, bool, bool) {
        let shared = crate::engine::scope::shared_entries(
            &json!({"data": {"page": "Docs", "which": "recipient", "url": "/d"}, "actor": {"name": "Ada"}}),
        );
        let built = std::cell::Cell::new(false);
        let has_own_data = own_data.is_some();
        let lazy = LazyScope::new(
            || {
                built.set(true);
                let mut own = json!({"recipient": {"id": name, "name": name},
                                     "current_message": {"id": format!("m-{name}")}});
                if let Some(d) = &own_data {
                    own["data"] = d.clone();
                }
                Scope::with_shared(shared.clone(), &own)
            },
            |n| RECIPIENT_NAMES.contains(&n) || (has_own_data && n == "data"),
        );
        let (blocks, whole) = match t.render_memo(&lazy, memo) {
            Ok(r) => r,
            Err(e) => panic!("render failed: {e}"),
        };
        (blocks, whole, built.get())
    }

    fn body(blocks: &Value) -> String {
        blocks[0]["rendered"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    #[test]
    fn a_template_reading_only_shared_names_renders_once_per_run() {
        let t = template(
            "**{{ actor.name }}** commented on {{ data.page }}",
            Some("{{ data.url }}"),
            &[("Open {{ data.page }}", "{{ data.url }}")],
        );
        let mut memo = TemplateMemo::default();
        let (first, whole, built) = render_for(&t, &mut memo, "Ann", None);
        assert!(!whole && built);
        assert!(body(&first).contains("<strong>Ada</strong> commented on Docs"));
        let (second, whole, built) = render_for(&t, &mut memo, "Bob", None);
        assert!(whole, "the second recipient reuses the run's render");
        assert!(
            second.is_shared_with(&first),
            "the reused blocks are the run's, not a copy"
        );
        assert!(
            !built,
            "no scope is built for a recipient that renders nothing"
        );
        assert_eq!(first, second);
    }

    #[test]
    fn a_template_reading_recipient_name_renders_per_recipient() {
        let t = template(
            "Hi {{ recipient.name }} about {{ data.page }}",
            Some("{{ data.url }}"),
            &[],
        );
        let mut memo = TemplateMemo::default();
        let (ann, _, _) = render_for(&t, &mut memo, "Ann", None);
        let (bob, whole, built) = render_for(&t, &mut memo, "Bob", None);
        let (cy, _, _) = render_for(&t, &mut memo, "Cy", None);
        assert!(body(&ann).contains("Hi Ann about Docs"), "{}", *ann);
        assert!(body(&bob).contains("Hi Bob about Docs"), "{}", *bob);
        assert!(body(&cy).contains("Hi Cy about Docs"), "{}", *cy);
        assert!(!whole && built);
        // Only the part that reads the recipient is per recipient: the URL is shared.
        assert!(matches!(memo.parts[0], PartMemo::PerRecipient));
        assert!(matches!(memo.parts[1], PartMemo::Shared { .. }));
        assert_eq!(bob[1]["rendered"], "/d");
    }

    #[test]
    fn names_read_in_tags_and_filters_are_seen() {
        for source in [
            "{% if recipient.name == 'Ann' %}A{% else %}B{% endif %}",
            "{% assign n = recipient.name %}{{ n }}",
            "{% for c in recipient %}{{ c }}{% endfor %}",
            "{% capture x %}{{ current_message.id }}{% endcapture %}{{ x }}",
            "{{- recipient.name -}}",
            "{{ data.page | append: recipient.name }}",
            "{{ data.page }}{%- comment -%}x{%- endcomment -%}{{ current_message.id }}",
        ] {
            let t = template(source, None, &[]);
            let mut memo = TemplateMemo::default();
            let (ann, _, _) = render_for(&t, &mut memo, "Ann", None);
            let (bob, _, _) = render_for(&t, &mut memo, "Bob", None);
            assert_ne!(body(&ann), body(&bob), "{source} was shared");
        }
    }

    #[test]
    fn own_trigger_data_is_not_given_the_runs_render() {
        let t = template("{{ data.page }}", None, &[]);
        let mut memo = TemplateMemo::default();
        let (shared, _, _) = render_for(&t, &mut memo, "Ann", None);
        let (own, whole, _) = render_for(&t, &mut memo, "Bob", Some(json!({"page": "Mine"})));
        let (again, whole_again, _) = render_for(&t, &mut memo, "Cy", None);
        assert!(body(&shared).contains("Docs") && body(&again).contains("Docs"));
        assert!(body(&own).contains("Mine"), "{}", *own);
        assert!(!whole && whole_again);
        // A template that never reads `data` is shared with own-data recipients too.
        let t = template("**{{ actor.name }}**", None, &[]);
        let mut memo = TemplateMemo::default();
        render_for(&t, &mut memo, "Ann", None);
        let (_, whole, _) = render_for(&t, &mut memo, "Bob", Some(json!({"page": "Mine"})));
        assert!(whole);
    }

    #[test]
    fn a_shared_render_error_is_every_recipients_error() {
        let t = template("{{ data.n | divided_by: 0 }}", None, &[]);
        let mut memo = TemplateMemo::default();
        let lazy = LazyScope::new(
            || Scope::new(&json!({"data": {"n": 1}})),
            |n| n == "recipient",
        );
        let first = t.render_memo(&lazy, &mut memo).err().map(|e| e.to_string());
        let lazy = LazyScope::new(
            || Scope::new(&json!({"data": {"n": 1}})),
            |n| n == "recipient",
        );
        let second = t.render_memo(&lazy, &mut memo).err().map(|e| e.to_string());
        assert!(first.is_some());
        assert_eq!(first, second);
    }

    /// The sanitizer's output for what the markdown renderer makes of `markdown`.
    fn through_ammonia(markdown: &str) -> String {
        use pulldown_cmark::{Options, Parser, html};
        let options = Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES;
        let mut out = String::new();
        html::push_html(&mut out, Parser::new_ext(markdown, options));
        ammonia::clean(&out)
    }

    #[test]
    fn skipping_the_sanitizer_never_changes_the_output() {
        use rand::{Rng, SeedableRng};
        let pieces = [
            "Hi",
            " ",
            "User 5",
            "**",
            "*",
            "_",
            "__",
            "~~",
            "`",
            "\n",
            "\n\n",
            "# ",
            "### ",
            "- ",
            "* ",
            "1. ",
            "2) ",
            "> ",
            "&",
            "&amp;",
            "&nbsp;",
            "&copy;",
            "&#39;",
            "<",
            ">",
            "\"",
            "'",
            "<b>",
            "<script>x</script>",
            "<!-- c -->",
            "[a](https://x.y)",
            "[a](javascript:alert(1))",
            "![i](x.png)",
            "<https://x.y>",
            "\\",
            "    ",
            "\t",
            "\r\n",
            "\u{a0}",
            "é",
            "日本",
            "🎉",
            "\u{feff}",
            "\u{7}",
            "\u{0}",
            "|a|b|\n|-|-|\n|1|2|",
            "```\ncode\n```",
            "```rust\nx\n```",
            "---",
            "***",
            "  \n",
            "[^1]",
            "\\*",
            "<p>",
            "</em>",
            "a_b_c",
            "x~y~",
            "~~~",
            "+ ",
            "\n    indented",
            "<div>",
            "</div>",
            "\n- # h\n",
            "\n  - > q\n",
            "\n> - a\n>   - b\n",
            "\n1. **x**\n\n   y\n",
            "\n> # t\n> `c`\n",
            "\n- a\n\n- b\n",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut skipped = 0;
        for _ in 0..30_000 {
            let n = rng.gen_range(1..12);
            let markdown: String = (0..n)
                .map(|_| pieces[rng.gen_range(0..pieces.len())])
                .collect();
            let fast = markdown_to_safe_html(&markdown).unwrap_or_default();
            assert_eq!(fast, through_ammonia(&markdown), "for {markdown:?}");
            let mut html = String::new();
            pulldown_cmark::html::push_html(
                &mut html,
                pulldown_cmark::Parser::new_ext(
                    &markdown,
                    pulldown_cmark::Options::ENABLE_STRIKETHROUGH
                        | pulldown_cmark::Options::ENABLE_TABLES,
                ),
            );
            let raw = pulldown_cmark::Parser::new(&markdown).any(|e| {
                matches!(
                    e,
                    pulldown_cmark::Event::Html(_) | pulldown_cmark::Event::InlineHtml(_)
                )
            });
            skipped += usize::from(!raw && is_sanitized_already(&html));
        }
        // The comparison above must cover the fast path, not only the sanitizer.
        assert!(skipped > 3_000, "only {skipped} inputs took the fast path");
    }

    #[test]
    fn the_fast_path_takes_only_plain_formatting() {
        assert!(is_sanitized_already(
            "<p>Hi <strong>Ada</strong> &amp; co</p>\n"
        ));
        for html in [
            "<p onclick=\"x\">a</p>",
            "<a href=\"javascript:x\">a</a>",
            "<script>x</script>",
            "<p>a<br />b</p>",
            "<img src=x>",
            "<p>&quot;</p>",
            "<p>a\u{a0}b</p>",
            "<p>a\rb</p>",
            "<pre><code>x</code></pre>",
            "<P>a</P>",
        ] {
            assert!(!is_sanitized_already(html), "{html}");
        }
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

//! Sanitizing: markdown to HTML that holds nothing executable, with a fast path that
//! skips the sanitizer when its output would equal its input, and safe URLs.

use super::MAX_HTML_TAGS;

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
}

//! How text-mode log lines write fields, so a value cannot forge a line.
//!
//! tracing-subscriber's default field formatter writes `%value` fields (Display) and the
//! message as they are: a request id `x status=200` or a token `sub` holding a newline and
//! an ANSI escape would read as extra fields, a fake record or terminal control. This
//! formatter (plugged in with `fmt().fmt_fields(..)`, the subscriber's hook for exactly
//! this) writes every value escaped: control characters as `\n`, `\u{1b}`, …; a value
//! holding anything but `[A-Za-z0-9._:/@+{}()-]` in double quotes, with `"` and `\`
//! escaped; the message unquoted but with its control characters escaped.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::Writer;

/// The field formatter for text logs (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct SafeFields;

impl<'a> MakeVisitor<Writer<'a>> for SafeFields {
    type Visitor = SafeVisitor<'a>;

    fn make_visitor(&self, target: Writer<'a>) -> Self::Visitor {
        SafeVisitor {
            writer: target,
            first: true,
            result: Ok(()),
        }
    }
}

/// Writes one event's or span's fields (see the module docs).
pub struct SafeVisitor<'a> {
    writer: Writer<'a>,
    first: bool,
    result: fmt::Result,
}

impl SafeVisitor<'_> {
    fn write(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        self.result = self.write_field(field, value);
    }

    fn write_field(&mut self, field: &Field, value: &str) -> fmt::Result {
        if !self.first {
            self.writer.write_char(' ')?;
        }
        self.first = false;
        let name = field.name();
        if name == "message" {
            return write_escaped(&mut self.writer, value, false);
        }
        if name.starts_with("log.") {
            // `tracing-log` metadata, shown by the formatter elsewhere.
            self.first = true;
            return Ok(());
        }
        write!(self.writer, "{}=", name.strip_prefix("r#").unwrap_or(name))?;
        if !value.is_empty() && value.chars().all(is_plain) {
            self.writer.write_str(value)
        } else {
            self.writer.write_char('"')?;
            write_escaped(&mut self.writer, value, true)?;
            self.writer.write_char('"')
        }
    }
}

/// Characters a value may hold and still be written without quotes.
fn is_plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._:/@+{}()-".contains(c)
}

/// Writes `text` with control characters escaped (and `"`/`\` too inside quotes).
fn write_escaped(out: &mut dyn Write, text: &str, quoted: bool) -> fmt::Result {
    for c in text.chars() {
        match c {
            '"' | '\\' if quoted => {
                out.write_char('\\')?;
                out.write_char(c)?;
            }
            // C0, DEL and C1 controls, and the line/paragraph separators some viewers
            // break lines at.
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                write!(out, "{}", c.escape_default())?;
            }
            c => out.write_char(c)?,
        }
    }
    Ok(())
}

impl Visit for SafeVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        self.write(field, &text);
    }
}

impl VisitOutput<fmt::Result> for SafeVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for SafeVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(text: &str, quoted: bool) -> String {
        let mut out = String::new();
        write_escaped(&mut out, text, quoted).expect("write");
        out
    }

    #[test]
    fn control_characters_quotes_and_backslashes_are_escaped() {
        assert_eq!(escaped("a\nb\u{1b}[31m", false), "a\\nb\\u{1b}[31m");
        assert_eq!(escaped("x\" y=\\", true), "x\\\" y=\\\\");
        assert_eq!(escaped("x\" y", false), "x\" y");
        assert_eq!(escaped("\u{85}\u{2028}", false), "\\u{85}\\u{2028}");
    }

    #[test]
    fn plain_values_need_no_quotes() {
        assert!("/v1/users/{user_id}".chars().all(is_plain));
        assert!("req-1.a_b".chars().all(is_plain));
        assert!(!"a b".chars().all(is_plain));
        assert!(!"a=b".chars().all(is_plain));
    }
}

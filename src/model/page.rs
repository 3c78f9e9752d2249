//! Cursor pagination for `{entries, page_info}` lists (spec §1.3): the parsed query
//! (`after`, `before`, `page_size`) and the opaque cursor codec.
//!
//! A cursor encodes a stable list position (the row's sequence). Clients must treat it as
//! opaque; we base64 it so nobody is tempted to do arithmetic on it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 50;

/// A validated page request. `after`/`before` are decoded positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageQuery {
    pub after: Option<i64>,
    pub before: Option<i64>,
    pub page_size: u32,
}

impl Default for PageQuery {
    fn default() -> Self {
        PageQuery {
            after: None,
            before: None,
            page_size: DEFAULT_PAGE_SIZE,
        }
    }
}

/// Which query parameter was wrong and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageError {
    pub field: &'static str,
    pub message: String,
}

impl PageQuery {
    /// Parses the raw query values; empty strings count as absent (clients send `after=`).
    pub fn parse(
        after: Option<&str>,
        before: Option<&str>,
        page_size: Option<&str>,
    ) -> Result<Self, PageError> {
        let cursor = |field: &'static str, raw: Option<&str>| -> Result<Option<i64>, PageError> {
            match raw.filter(|s| !s.is_empty()) {
                None => Ok(None),
                Some(s) => decode_cursor(s).map(Some).ok_or_else(|| PageError {
                    field,
                    message: "is not a cursor this server issued".into(),
                }),
            }
        };
        let page_size = match page_size.filter(|s| !s.is_empty()) {
            None => DEFAULT_PAGE_SIZE,
            Some(s) => match s.parse::<u32>() {
                Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
                _ => {
                    return Err(PageError {
                        field: "page_size",
                        message: format!("must be an integer from 1 to {MAX_PAGE_SIZE}"),
                    });
                }
            },
        };
        Ok(PageQuery {
            after: cursor("after", after)?,
            before: cursor("before", before)?,
            page_size,
        })
    }
}

/// Encodes a list position as an opaque cursor.
pub fn encode_cursor(position: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("p{position}"))
}

/// Decodes a cursor made by [`encode_cursor`]; `None` for anything else.
pub fn decode_cursor(cursor: &str) -> Option<i64> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim_end_matches('=')).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    text.strip_prefix('p')?.parse().ok()
}

/// One page of a list plus the positions of its neighbours' edges.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub entries: Vec<T>,
    /// Position to pass as `after` for the next page, when one exists.
    pub after: Option<i64>,
    /// Position to pass as `before` for the previous page, when one exists.
    pub before: Option<i64>,
}

impl<T> Page<T> {
    /// The same page with each entry mapped (e.g. a stored entity to its wire shape).
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            entries: self.entries.into_iter().map(f).collect(),
            after: self.after,
            before: self.before,
        }
    }
}

impl Page<Value> {
    /// The `{entries, page_info}` envelope.
    pub fn into_wire(self, page_size: u32) -> Value {
        json!({
            "entries": self.entries,
            "page_info": {
                "__typename": "PageInfo",
                "after": self.after.map(encode_cursor),
                "before": self.before.map(encode_cursor),
                "page_size": page_size,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_foreign_strings() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        assert_eq!(decode_cursor("not-a-cursor"), None);
        assert_eq!(decode_cursor(""), None);
    }

    #[test]
    fn page_size_defaults_to_50_and_must_be_1_to_50() {
        assert_eq!(
            PageQuery::parse(None, None, None).map(|q| q.page_size),
            Ok(50)
        );
        assert_eq!(
            PageQuery::parse(None, None, Some("1")).map(|q| q.page_size),
            Ok(1)
        );
        assert!(PageQuery::parse(None, None, Some("0")).is_err());
        assert!(PageQuery::parse(None, None, Some("51")).is_err());
        assert!(PageQuery::parse(None, None, Some("ten")).is_err());
    }

    #[test]
    fn empty_cursors_are_absent_and_bad_ones_are_errors() {
        assert_eq!(
            PageQuery::parse(Some(""), Some(""), None),
            Ok(PageQuery::default())
        );
        let err = PageQuery::parse(Some("zzz"), None, None).err();
        assert_eq!(err.map(|e| e.field), Some("after"));
    }
}

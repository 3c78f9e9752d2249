//! Translations as Knock holds them (issue 21 item 4): per locale, an optional namespace
//! and an optional tenant, a JSON object of keys to strings (nested objects group keys;
//! an object with `one`/`other`/`zero` is a plural). Pure data: parsing, validation and
//! the lookup with Knock's locale fallback; no I/O.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::ids::EntityId;

/// Largest `content` of one translation (bytes of JSON text).
pub const MAX_CONTENT_BYTES: usize = 256 * 1024;
/// Longest locale code (BCP 47 tags in practice stay far below).
pub const MAX_LOCALE_LEN: usize = 35;
/// Longest namespace.
pub const MAX_NAMESPACE_LEN: usize = 64;

/// Which translation: `tenant` and `namespace` are `None` when absent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TranslationId {
    pub tenant: Option<String>,
    pub locale_code: String,
    pub namespace: Option<String>,
}

/// A bad part of a translation request: the field and why.
#[derive(Debug, Clone, PartialEq)]
pub struct TranslationError {
    pub field: &'static str,
    pub message: String,
}

fn bad(field: &'static str, message: impl Into<String>) -> TranslationError {
    TranslationError {
        field,
        message: message.into(),
    }
}

/// A locale code: a language (2–3 letters) and optional subtags of letters and digits
/// (`en`, `fr-CA`, `zh-Hant-TW`), separated by `-` (or `_`, normalized to `-`).
pub fn parse_locale(raw: &str) -> Result<String, TranslationError> {
    let code = raw.replace('_', "-");
    let mut parts = code.split('-');
    let language = parts.next().unwrap_or_default();
    let ok = code.len() <= MAX_LOCALE_LEN
        && (2..=3).contains(&language.len())
        && language.bytes().all(|b| b.is_ascii_alphabetic())
        && parts
            .all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()));
    if ok {
        Ok(code)
    } else {
        Err(bad(
            "locale_code",
            "must be a locale code such as `en` or `fr-CA`",
        ))
    }
}

/// A namespace: 1–64 letters, digits, `_` or `-` (it is written `namespace:key` and
/// `namespace.locale.json`, so neither `:` nor `.`).
pub fn parse_namespace(raw: &str) -> Result<String, TranslationError> {
    let ok = !raw.is_empty()
        && raw.len() <= MAX_NAMESPACE_LEN
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(bad("namespace", "must be 1-64 letters, digits, `_` or `-`"))
    }
}

/// A tenant id as every tenant path takes it.
pub fn parse_tenant(raw: &str) -> Result<String, TranslationError> {
    EntityId::parse_safe(raw)
        .map(|id| id.as_str().to_owned())
        .map_err(|m| bad("tenant", m))
}

/// A translation's `content`: JSON text of an object whose values are strings or
/// objects of the same kind, at most [`MAX_CONTENT_BYTES`].
pub fn parse_content(raw: &str) -> Result<Map<String, Value>, TranslationError> {
    if raw.len() > MAX_CONTENT_BYTES {
        return Err(bad(
            "translation.content",
            format!("is over {MAX_CONTENT_BYTES} bytes"),
        ));
    }
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(raw) else {
        return Err(bad(
            "translation.content",
            "must be the JSON text of an object of keys to strings",
        ));
    };
    fn strings_only(map: &Map<String, Value>, depth: usize) -> bool {
        depth < 16
            && map.iter().all(|(k, v)| {
                !k.is_empty()
                    && match v {
                        Value::String(_) => true,
                        Value::Object(inner) => strings_only(inner, depth + 1),
                        _ => false,
                    }
            })
    }
    if !strings_only(&map, 0) {
        return Err(bad(
            "translation.content",
            "must map keys to strings (or to objects of keys to strings), at most 16 deep",
        ));
    }
    Ok(map)
}

/// Every translation, for lookups at render time: an immutable snapshot.
#[derive(Debug, Default)]
pub struct TranslationSet {
    sets: HashMap<TranslationId, Map<String, Value>>,
    /// The locale used when the recipient has none or no set has the key in theirs.
    pub default_locale: String,
}

/// What a lookup found: the text, or a plural object (`one`, `other`…).
pub type Found<'a> = &'a Value;

impl TranslationSet {
    /// A snapshot of `sets` with `default_locale`.
    pub fn new(
        sets: impl IntoIterator<Item = (TranslationId, Map<String, Value>)>,
        default_locale: &str,
    ) -> Self {
        TranslationSet {
            sets: sets.into_iter().collect(),
            default_locale: default_locale.to_owned(),
        }
    }

    /// The locales to try, in Knock's order: the tenant's `fr-CA`, the tenant's `fr`,
    /// the tenant's default locale, then `fr-CA`, `fr` and the default locale.
    pub fn chain(&self, tenant: Option<&str>, locale: Option<&str>) -> Vec<TranslationScope> {
        let mut locales: Vec<String> = Vec::new();
        if let Some(locale) = locale.and_then(|l| parse_locale(l).ok()) {
            let language = locale.split('-').next().unwrap_or_default().to_owned();
            locales.push(locale);
            locales.push(language);
        }
        locales.push(self.default_locale.clone());
        let mut unique: Vec<String> = Vec::new();
        for l in locales {
            if !unique.iter().any(|u| u.eq_ignore_ascii_case(&l)) {
                unique.push(l);
            }
        }
        let mut chain = Vec::new();
        if let Some(t) = tenant {
            for l in &unique {
                chain.push(TranslationScope {
                    tenant: Some(t.to_owned()),
                    locale: l.clone(),
                });
            }
        }
        for l in unique {
            chain.push(TranslationScope {
                tenant: None,
                locale: l,
            });
        }
        chain
    }

    /// The value of `key` (dots walk nested objects; a key holding dots itself is
    /// tried whole first) in `namespace`, by the first scope of `chain` that has it.
    pub fn lookup(
        &self,
        chain: &[TranslationScope],
        namespace: Option<&str>,
        key: &str,
    ) -> Option<Found<'_>> {
        chain.iter().find_map(|scope| {
            let id = TranslationId {
                tenant: scope.tenant.clone(),
                locale_code: scope.locale.clone(),
                namespace: namespace.map(str::to_owned),
            };
            let set = self.sets.get(&id).or_else(|| {
                // Locale codes compare case-insensitively (`fr-ca` is `fr-CA`).
                self.sets.iter().find_map(|(k, v)| {
                    (k.tenant == id.tenant
                        && k.namespace == id.namespace
                        && k.locale_code.eq_ignore_ascii_case(&id.locale_code))
                    .then_some(v)
                })
            })?;
            set.get(key).or_else(|| {
                let mut parts = key.split('.');
                let first = set.get(parts.next()?)?;
                parts.try_fold(first, |v, p| v.get(p))
            })
        })
    }
}

/// One step of the fallback chain.
#[derive(Debug, Clone, PartialEq)]
pub struct TranslationScope {
    pub tenant: Option<String>,
    pub locale: String,
}

/// The CLDR plural category of `count` for `locale`'s language, as far as keys go
/// (`zero` is tried first for 0 when present, then this): French and its relatives
/// use `one` for 0 and 1; most others `one` for 1 only; a few have no `one`.
pub fn plural_category(locale: &str, count: f64) -> &'static str {
    let language = locale.split('-').next().unwrap_or_default();
    let integer = count.fract() == 0.0;
    match language {
        "fr" | "ff" | "kab" | "hy" | "pt" if integer && (count == 0.0 || count == 1.0) => "one",
        "fr" | "ff" | "kab" | "hy" | "pt" => "other",
        "ja" | "ko" | "zh" | "th" | "vi" | "id" | "ms" => "other",
        _ if integer && count == 1.0 => "one",
        _ => "other",
    }
}

/// Splits Knock's `namespace:key`.
pub fn split_key(full: &str) -> (Option<&str>, &str) {
    match full.split_once(':') {
        Some((ns, key)) if !ns.is_empty() => (Some(ns), key),
        _ => (None, full),
    }
}

/// A stored translation: `content` is the JSON text as given.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTranslation {
    pub id: TranslationId,
    pub content: String,
    pub inserted_at: String,
    pub updated_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set() -> TranslationSet {
        let obj = |v: Value| match v {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let id = |tenant: Option<&str>, locale: &str, ns: Option<&str>| TranslationId {
            tenant: tenant.map(str::to_owned),
            locale_code: locale.to_owned(),
            namespace: ns.map(str::to_owned),
        };
        TranslationSet::new(
            [
                (
                    id(None, "en", None),
                    obj(json!({"hi": "Hi", "only_en": "E", "a": {"b": "nested"}})),
                ),
                (id(None, "fr", None), obj(json!({"hi": "Salut"}))),
                (id(None, "fr-CA", None), obj(json!({"hi": "Allo"}))),
                (
                    id(Some("acme"), "fr", None),
                    obj(json!({"hi": "Salut d'Acme"})),
                ),
                (
                    id(Some("acme"), "en", None),
                    obj(json!({"only_en": "Acme E"})),
                ),
                (
                    id(None, "en", Some("admin")),
                    obj(json!({"hi": "Admin hi"})),
                ),
            ],
            "en",
        )
    }

    #[test]
    fn the_fallback_order_is_knocks() {
        let s = set();
        let text = |tenant, locale, ns, key| {
            s.lookup(&s.chain(tenant, locale), ns, key)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        assert_eq!(
            text(Some("acme"), Some("fr-CA"), None, "hi").as_deref(),
            Some("Salut d'Acme")
        );
        assert_eq!(
            text(None, Some("fr-CA"), None, "hi").as_deref(),
            Some("Allo")
        );
        assert_eq!(
            text(None, Some("fr-FR"), None, "hi").as_deref(),
            Some("Salut")
        );
        assert_eq!(
            text(None, Some("fr-ca"), None, "hi").as_deref(),
            Some("Allo")
        );
        // Tenant default locale before the plain locale chain.
        assert_eq!(
            text(Some("acme"), Some("fr"), None, "only_en").as_deref(),
            Some("Acme E")
        );
        assert_eq!(
            text(Some("other"), Some("fr"), None, "only_en").as_deref(),
            Some("E")
        );
        assert_eq!(text(None, None, None, "hi").as_deref(), Some("Hi"));
        assert_eq!(text(None, Some("de"), None, "hi").as_deref(), Some("Hi"));
        assert_eq!(
            text(None, Some("en"), Some("admin"), "hi").as_deref(),
            Some("Admin hi")
        );
        assert_eq!(
            text(None, Some("en"), None, "a.b").as_deref(),
            Some("nested")
        );
        assert_eq!(text(None, Some("en"), None, "missing"), None);
        assert_eq!(text(None, Some("en"), Some("nope"), "hi"), None);
    }

    #[test]
    fn bad_input_is_named() {
        assert!(parse_locale("en").is_ok() && parse_locale("fr_CA").as_deref() == Ok("fr-CA"));
        for l in ["", "e", "english", "en-", "en-toolongsubtag", "1a", "en/fr"] {
            assert!(parse_locale(l).is_err(), "{l}");
        }
        assert!(parse_namespace("a:b").is_err() && parse_namespace("a.b").is_err());
        assert!(parse_content("[]").is_err());
        assert!(parse_content("{\"a\": 1}").is_err());
        assert!(parse_content("{\"a\": {\"b\": \"c\"}}").is_ok());
        assert!(
            parse_content(&format!("{{\"a\": \"{}\"}}", "x".repeat(MAX_CONTENT_BYTES))).is_err()
        );
    }

    #[test]
    fn plural_categories() {
        assert_eq!(plural_category("en", 1.0), "one");
        assert_eq!(plural_category("en", 0.0), "other");
        assert_eq!(plural_category("fr-CA", 0.0), "one");
        assert_eq!(plural_category("fr", 2.0), "other");
        assert_eq!(plural_category("ja", 1.0), "other");
        assert_eq!(split_key("admin:hi"), (Some("admin"), "hi"));
        assert_eq!(split_key("hi"), (None, "hi"));
    }
}

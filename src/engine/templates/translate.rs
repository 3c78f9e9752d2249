//! Knock's `t` filter and `{% t %}` tag: `{{ "ns:key" | t: name: actor.name, count: n }}`
//! or `{% t "ns:key" name: actor.name, count: n %}`.
//!
//! The text comes from the translations a run renders with ([`with_translations`]),
//! found through Knock's fallback chain for the run's tenant (`tenant.id`) and the
//! recipient's `locale` (`recipient.locale`; reading them marks the render as the
//! recipient's own, so the run's memo never shares it across locales). With `count`,
//! a plural object's `zero` (for 0), then the locale's category (`one`/`other`) is
//! taken. The text is itself Liquid: the arguments (and `count`) are its variables.
//! A key no translation has renders as the key itself, as written (`ns:key`), and is
//! recorded for the run record.

use std::cell::RefCell;
use std::io::Write;
use std::sync::Arc;

use liquid_core::model::{KString, Scalar, Value, ValueView};
use liquid_core::parser::{FilterArguments, ParameterReflection};
use liquid_core::{
    Error, Expression, Filter, FilterReflection, Language, ParseFilter, ParseTag, Renderable,
    Result, Runtime, TagReflection, TagTokenIter,
};

use crate::model::translations::{TranslationSet, parse_locale, plural_category, split_key};

thread_local! {
    static CONTEXT: RefCell<Option<Context>> = const { RefCell::new(None) };
}

struct Context {
    set: Arc<TranslationSet>,
    missing: Vec<String>,
}

/// Runs `render` with `set` as the translations `t` reads; returns its result and the
/// keys no translation had (each once, in the order met).
pub fn with_translations<R>(
    set: Arc<TranslationSet>,
    render: impl FnOnce() -> R,
) -> (R, Vec<String>) {
    let previous = CONTEXT.with(|c| {
        c.replace(Some(Context {
            set,
            missing: Vec::new(),
        }))
    });
    let out = render();
    let missing = CONTEXT
        .with(|c| c.replace(previous))
        .map(|c| c.missing)
        .unwrap_or_default();
    (out, missing)
}

/// Translates `full_key` with `args` for the runtime's recipient and tenant.
fn translate(full_key: &str, args: &[(KString, Value)], runtime: &dyn Runtime) -> Result<String> {
    // A missing name reads as nil here (see `scope`): only a real value counts.
    let locale = runtime
        .try_get(&[Scalar::new("recipient"), Scalar::new("locale")])
        .and_then(|v| parse_locale(&v.to_kstr()).ok());
    let tenant = runtime
        .try_get(&[Scalar::new("tenant"), Scalar::new("id")])
        .map(|v| v.to_kstr().into_owned())
        .filter(|t| !t.is_empty());
    let (namespace, key) = split_key(full_key);
    let count = args
        .iter()
        .find(|(k, _)| k == "count")
        .and_then(|(_, v)| v.as_scalar().and_then(|s| s.to_float()));
    let found = CONTEXT.with(|c| {
        let mut c = c.borrow_mut();
        let ctx = c.as_mut()?;
        let chain = ctx.set.chain(tenant.as_deref(), locale.as_deref());
        let text = ctx.set.lookup(&chain, namespace, key).and_then(|value| {
            pick(
                value,
                count,
                locale.as_deref().unwrap_or(&ctx.set.default_locale),
            )
        });
        if text.is_none() && !ctx.missing.iter().any(|m| m == full_key) {
            ctx.missing.push(full_key.to_owned());
        }
        text
    });
    let Some(text) = found else {
        return Ok(full_key.to_owned());
    };
    if !text.contains("{{") && !text.contains("{%") {
        return Ok(text);
    }
    let template = super::filters::parser().parse(&text).map_err(|e| {
        Error::with_msg(format!("translation `{full_key}` is not valid Liquid: {e}"))
    })?;
    let mut globals = liquid::Object::new();
    for (k, v) in args {
        globals.insert(k.clone(), v.clone());
    }
    template.render(&globals)
}

/// The text for a found value: a string, or with `count` a plural object's form.
fn pick(value: &serde_json::Value, count: Option<f64>, locale: &str) -> Option<String> {
    match (value, count) {
        (serde_json::Value::String(s), _) => Some(s.clone()),
        (serde_json::Value::Object(forms), Some(n)) => {
            let zero = (n == 0.0).then(|| forms.get("zero")).flatten();
            zero.or_else(|| forms.get(plural_category(locale, n)))
                .or_else(|| forms.get("other"))
                .and_then(|v| v.as_str().map(str::to_owned))
        }
        (serde_json::Value::Object(forms), None) => forms
            .get("other")
            .and_then(|v| v.as_str().map(str::to_owned)),
        _ => None,
    }
}

/// The `t` filter.
#[derive(Clone, Copy, Debug, Default)]
pub struct TFilter;

impl FilterReflection for TFilter {
    fn name(&self) -> &str {
        "t"
    }
    fn description(&self) -> &str {
        "translates a key for the recipient's locale"
    }
    fn positional_parameters(&self) -> &'static [ParameterReflection] {
        &[]
    }
    fn keyword_parameters(&self) -> &'static [ParameterReflection] {
        &[]
    }
}

impl ParseFilter for TFilter {
    fn parse(&self, arguments: FilterArguments<'_>) -> Result<Box<dyn Filter>> {
        if arguments.positional.count() > 0 {
            return Err(Error::with_msg(
                "`t` takes named arguments only (`t: name: value, count: n`)",
            ));
        }
        let args = arguments
            .keyword
            .map(|(k, v)| (KString::from_ref(k), v))
            .collect();
        Ok(Box::new(T { args }))
    }

    fn reflection(&self) -> &dyn FilterReflection {
        self
    }
}

#[derive(Debug)]
struct T {
    args: Vec<(KString, Expression)>,
}

impl std::fmt::Display for T {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "t")
    }
}

fn evaluate_args(
    args: &[(KString, Expression)],
    runtime: &dyn Runtime,
) -> Result<Vec<(KString, Value)>> {
    args.iter()
        .map(|(k, e)| Ok((k.clone(), e.evaluate(runtime)?.to_value())))
        .collect()
}

impl Filter for T {
    fn evaluate(&self, input: &dyn ValueView, runtime: &dyn Runtime) -> Result<Value> {
        let args = evaluate_args(&self.args, runtime)?;
        let key = input.to_kstr();
        Ok(Value::scalar(translate(&key, &args, runtime)?))
    }
}

/// The `{% t "key" name: value, count: n %}` tag.
#[derive(Clone, Copy, Debug, Default)]
pub struct TTag;

impl TagReflection for TTag {
    fn tag(&self) -> &str {
        "t"
    }
    fn description(&self) -> &str {
        "translates a key for the recipient's locale"
    }
}

impl ParseTag for TTag {
    fn parse(
        &self,
        mut arguments: TagTokenIter<'_>,
        _options: &Language,
    ) -> Result<Box<dyn Renderable>> {
        let key = arguments
            .expect_next("a translation key expected")?
            .expect_value()
            .into_result()?;
        let mut args = Vec::new();
        while let Some(token) = arguments.next() {
            let token = if token.as_str() == "," {
                match arguments.next() {
                    Some(t) => t,
                    None => break,
                }
            } else {
                token
            };
            let name = token.expect_identifier().into_result()?.to_owned();
            arguments
                .expect_next("\":\" expected.")?
                .expect_str(":")
                .into_result_custom_msg("\":\" expected.")?;
            let value = arguments
                .expect_next("a value expected")?
                .expect_value()
                .into_result()?;
            args.push((KString::from_string(name), value));
        }
        Ok(Box::new(TRender { key, args }))
    }

    fn reflection(&self) -> &dyn TagReflection {
        self
    }
}

#[derive(Debug)]
struct TRender {
    key: Expression,
    args: Vec<(KString, Expression)>,
}

impl Renderable for TRender {
    fn render_to(&self, writer: &mut dyn Write, runtime: &dyn Runtime) -> Result<()> {
        let key = self.key.evaluate(runtime)?.to_kstr().into_owned();
        let args = evaluate_args(&self.args, runtime)?;
        let text = translate(&key, &args, runtime)?;
        super::budget::charge_growth(runtime, 0, text.len() as u64)?;
        writer
            .write_all(text.as_bytes())
            .map_err(|e| Error::with_msg(format!("Failed to render: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::engine::scope::Scope;
    use crate::engine::templates::test_support::template;
    use crate::model::translations::TranslationId;

    fn set() -> Arc<TranslationSet> {
        let id = |locale: &str, ns: Option<&str>| TranslationId {
            tenant: None,
            locale_code: locale.to_owned(),
            namespace: ns.map(str::to_owned),
        };
        let map = |v: Value| v.as_object().cloned().unwrap_or_default();
        Arc::new(TranslationSet::new(
            [
                (
                    id("en", None),
                    map(
                        json!({"hi": "Hi {{ name }}", "n": {"zero": "none", "one": "one", "other": "{{ count }}"}}),
                    ),
                ),
                (id("en", Some("ns")), map(json!({"hi": "Namespaced"}))),
            ],
            "en",
        ))
    }

    fn render(source: &str, data: Value) -> (String, Vec<String>) {
        let t = template(source, None, &[]);
        let (out, missing) = with_translations(set(), || {
            t.render(&Scope::new(
                &json!({"data": data, "recipient": {"locale": "en"}}),
            ))
        });
        let out = out.map_err(|e| e.to_string()).expect("renders");
        (
            out[0]["rendered"].as_str().unwrap_or_default().to_owned(),
            missing,
        )
    }

    #[test]
    fn filter_and_tag_translate_interpolate_and_pluralize() {
        let (out, missing) = render(
            "{{ 'hi' | t: name: data.who }}|{% t 'ns:hi' %}|{% t 'n' count: 0 %}|\
             {{ 'n' | t: count: 1 }}|{% t 'n', count: data.k %}|{{ 'nope' | t }}|{% t 'ns:nope' %}",
            json!({"who": "Ada", "k": 7}),
        );
        assert_eq!(out, "<p>Hi Ada|Namespaced|none|one|7|nope|ns:nope</p>\n");
        assert_eq!(missing, ["nope", "ns:nope"]);
    }

    #[test]
    fn without_translations_every_key_renders_as_itself() {
        let t = template("{{ 'hi' | t }}", None, &[]);
        let blocks = t.render(&Scope::new(&json!({}))).expect("renders");
        assert_eq!(blocks[0]["rendered"], "<p>hi</p>\n");
    }

    #[test]
    fn malformed_uses_do_not_compile() {
        for source in [
            "{% t %}",
            "{{ 'a' | t: 1 }}",
            "{% t 'a' name %}",
            "{% t 'a' name: %}",
        ] {
            let src = crate::model::workflow::InAppTemplateSource {
                markdown_body: source.into(),
                action_url: None,
                action_buttons: vec![],
            };
            assert!(
                crate::engine::templates::InAppTemplate::compile(&src, "t").is_err(),
                "{source}"
            );
        }
    }
}

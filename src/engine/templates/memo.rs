//! The per-run memo: parts whose output cannot differ between a run's recipients are
//! rendered once and reused (see the module doc of `templates`).

use std::cell::OnceCell;

use super::render::render_part;
use super::{Part, RenderError};
use crate::engine::scope::{Reads, Scope};
use crate::model::message::Blocks;

/// One recipient's render scope, built on first use, and which top-level names are the
/// recipient's own (differ between the run's recipients).
pub struct LazyScope<'a> {
    build: Box<dyn Fn() -> ScopeRef<'a> + 'a>,
    pub(super) scope: OnceCell<ScopeRef<'a>>,
    pub(super) is_own: Box<dyn Fn(&str) -> bool + 'a>,
}

/// A scope built for this render, or one the caller already had.
pub(super) enum ScopeRef<'a> {
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

    pub(super) fn borrowed(scope: &'a Scope<'a>) -> ScopeRef<'a> {
        ScopeRef::Borrowed(scope)
    }

    pub(super) fn get(&self) -> &Scope<'a> {
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
    pub(super) blocks: Option<(Reads, Blocks)>,
    /// Per part, in render order (body, action URL, each button's label and action).
    pub(super) parts: Vec<PartMemo>,
}

#[derive(Clone)]
pub(super) enum PartMemo {
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
pub(super) fn part(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::templates::InAppTemplate;
    use crate::engine::templates::test_support::template;
    use serde_json::{Value, json};

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
}

//! The Liquid render scope: JSON turned into a tree that Liquid reads leniently.
//!
//! The `liquid` crate treats a missing variable or key as a render *error*. Knock's Liquid
//! renders it as nothing, and real templates depend on that (`{{ recipient.name }}` for a
//! user who never set a name). [`Scope`] therefore answers every missing key — at any
//! depth, and past the end of arrays — with a value that is nil, falsy, empty and still
//! indexable, so `{{ data.a.b.c }}` renders `""` and `{{ x | default: "y" }}` works.
//!
//! Invariant: the tree is built once per render from `serde_json::Value` and never mutated.
//! A recipient's own JSON (its entity, its own `data`) is not converted at all: the
//! scope reads it in place through [`JsonNode`], which answers every query exactly as
//! the [`Node`] converted from the same JSON would.
//!
//! Dependency recording: between [`Scope::record`] and [`Scope::take_reads`] the scope
//! notes every top-level name a render looks up (and whether it enumerated the whole
//! scope). Everything a template outputs flows from those lookups, so two renders whose
//! recorded names resolve to the same values produce the same output (`templates` uses
//! this to render a part once per run when it reads nothing recipient-specific).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use liquid::model::{
    ArrayView, DisplayCow, KStringCow, ObjectView, ScalarCow, State, Value, ValueView,
};
use ref_cast::RefCast;
use serde_json::Value as Json;

/// A node of the scope tree.
#[derive(Debug)]
pub enum Node {
    /// A scalar (string, number, bool) or JSON `null`.
    Leaf(Value),
    List(Vec<Node>),
    Map(BTreeMap<String, Node>),
    /// What a lookup of something absent yields: nil, yet indexable.
    Missing,
}

/// The one shared "absent" node every missing lookup borrows.
static MISSING: Node = Node::Missing;

/// A top-level entry of a recipient's own: converted, or JSON read in place.
#[derive(Debug)]
pub enum Own<'a> {
    Node(Node),
    Json(&'a JsonNode),
}

impl Own<'_> {
    fn view(&self) -> &dyn ValueView {
        match self {
            Own::Node(node) => node,
            Own::Json(json) => *json,
        }
    }
}

/// The root object handed to `Template::render`: per-recipient entries (`own`) over
/// entries shared by every recipient of a run (`shared`, e.g. a large `data`), so a run
/// with many recipients converts its shared JSON once.
#[derive(Debug)]
pub struct Scope<'a> {
    shared: Arc<BTreeMap<String, Node>>,
    own: BTreeMap<String, Own<'a>>,
    /// The top-level lookups since [`Scope::record`]; `None` when not recording.
    reads: RefCell<Option<Reads>>,
}

/// What a render read from the top level of its scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reads {
    /// Every top-level name looked up (found or not), without duplicates.
    pub names: Vec<String>,
    /// Whether the render enumerated or converted the whole scope (then it may depend
    /// on any name).
    pub everything: bool,
}

impl Reads {
    /// Whether the render may have read any name `is_own` accepts.
    pub fn touches(&self, is_own: impl Fn(&str) -> bool) -> bool {
        self.everything || self.names.iter().any(|n| is_own(n))
    }
}

/// Converts the top-level entries of a JSON object for [`Scope::with_shared`].
pub fn shared_entries(root: &Json) -> Arc<BTreeMap<String, Node>> {
    Arc::new(match root {
        Json::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), Node::from_json(v)))
            .collect(),
        _ => BTreeMap::new(),
    })
}

impl<'a> Scope<'a> {
    /// Builds a scope from a JSON object (anything else gives an empty scope).
    pub fn new(root: &Json) -> Scope<'a> {
        Scope::with_shared(Arc::new(BTreeMap::new()), root)
    }

    /// `own`'s top-level entries win over `shared`'s.
    pub fn with_shared(shared: Arc<BTreeMap<String, Node>>, own: &Json) -> Scope<'a> {
        let own = match own {
            Json::Object(map) => map
                .iter()
                .map(|(k, v)| (k.clone(), Own::Node(Node::from_json(v))))
                .collect(),
            _ => BTreeMap::new(),
        };
        Scope {
            shared,
            own,
            reads: RefCell::new(None),
        }
    }

    /// A scope from entries already converted or read in place (`own`'s win over
    /// `shared`'s).
    pub fn from_nodes(
        shared: Arc<BTreeMap<String, Node>>,
        own: BTreeMap<String, Own<'a>>,
    ) -> Scope<'a> {
        Scope {
            shared,
            own,
            reads: RefCell::new(None),
        }
    }

    /// Starts recording top-level lookups (forgetting any earlier recording).
    pub fn record(&self) {
        *self.reads.borrow_mut() = Some(Reads::default());
    }

    /// Stops recording and returns what was read since [`Scope::record`]; without a
    /// recording, `everything` (nothing is known).
    pub fn take_reads(&self) -> Reads {
        self.reads.borrow_mut().take().unwrap_or(Reads {
            names: Vec::new(),
            everything: true,
        })
    }

    fn note(&self, name: &str) {
        if let Some(reads) = self.reads.borrow_mut().as_mut()
            && !reads.names.iter().any(|n| n == name)
        {
            reads.names.push(name.to_owned());
        }
    }

    fn note_everything(&self) {
        if let Some(reads) = self.reads.borrow_mut().as_mut() {
            reads.everything = true;
        }
    }

    pub fn as_object(&self) -> &dyn ObjectView {
        self
    }

    fn lookup(&self, key: &str) -> Option<&dyn ValueView> {
        match self.own.get(key) {
            Some(own) => Some(own.view()),
            None => self.shared.get(key).map(|n| n as &dyn ValueView),
        }
    }

    fn entries(&self) -> impl Iterator<Item = (&String, &dyn ValueView)> {
        self.note_everything();
        self.own.iter().map(|(k, v)| (k, v.view())).chain(
            self.shared
                .iter()
                .filter(|(k, _)| !self.own.contains_key(k.as_str()))
                .map(|(k, v)| (k, v as &dyn ValueView)),
        )
    }
}

impl ValueView for Scope<'_> {
    fn as_debug(&self) -> &dyn fmt::Debug {
        self
    }
    fn render(&self) -> DisplayCow<'_> {
        DisplayCow::Borrowed(&"")
    }
    fn source(&self) -> DisplayCow<'_> {
        DisplayCow::Borrowed(&"")
    }
    fn type_name(&self) -> &'static str {
        "object"
    }
    fn query_state(&self, state: State) -> bool {
        matches!(state, State::Truthy)
    }
    fn to_kstr(&self) -> KStringCow<'_> {
        KStringCow::from_static("")
    }
    fn to_value(&self) -> Value {
        Value::Object(
            self.entries()
                .map(|(k, v)| (k.clone().into(), v.to_value()))
                .collect(),
        )
    }
    fn as_object(&self) -> Option<&dyn ObjectView> {
        Some(self)
    }
}

impl ObjectView for Scope<'_> {
    fn as_value(&self) -> &dyn ValueView {
        self
    }
    fn size(&self) -> i64 {
        self.entries().count() as i64
    }
    fn keys<'k>(&'k self) -> Box<dyn Iterator<Item = KStringCow<'k>> + 'k> {
        Box::new(
            self.entries()
                .map(|(k, _)| KStringCow::from_ref(k.as_str())),
        )
    }
    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        Box::new(self.entries().map(|(_, v)| v))
    }
    fn iter<'k>(&'k self) -> Box<dyn Iterator<Item = (KStringCow<'k>, &'k dyn ValueView)> + 'k> {
        Box::new(
            self.entries()
                .map(|(k, v)| (KStringCow::from_ref(k.as_str()), v)),
        )
    }
    fn contains_key(&self, index: &str) -> bool {
        self.note(index);
        true
    }
    fn get<'s>(&'s self, index: &str) -> Option<&'s dyn ValueView> {
        self.note(index);
        Some(self.lookup(index).unwrap_or(&MISSING))
    }
}

/// JSON that Liquid reads in place: every query answers exactly what it answers for
/// [`Node::from_json`] of the same JSON (`null` as [`Node::Missing`], numbers as `i64`
/// when they fit and `f64` otherwise, objects in key order — `serde_json`'s `Map` is
/// sorted, as `Node::Map` is), without building the tree. For JSON that is read for
/// one render only (a recipient's entity): nothing is copied.
#[derive(Debug, RefCast)]
#[repr(transparent)]
pub struct JsonNode(Json);

impl JsonNode {
    pub fn new(json: &Json) -> &JsonNode {
        JsonNode::ref_cast(json)
    }

    /// A number as the scalar `Node::from_json` makes of it.
    fn number(n: &serde_json::Number) -> ScalarCow<'static> {
        match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => ScalarCow::new(i),
            (None, Some(f)) => ScalarCow::new(f),
            (None, None) => ScalarCow::new(n.to_string()),
        }
    }

    fn is_empty_container(&self) -> bool {
        match &self.0 {
            Json::Array(items) => items.is_empty(),
            Json::Object(map) => map.is_empty(),
            Json::Null => true,
            _ => false,
        }
    }

    fn get_index(&self, index: i64) -> Option<&JsonNode> {
        let Json::Array(items) = &self.0 else {
            return None;
        };
        let len = items.len() as i64;
        let i = if index < 0 { len + index } else { index };
        usize::try_from(i)
            .ok()
            .and_then(|i| items.get(i))
            .map(JsonNode::new)
    }
}

impl ValueView for JsonNode {
    fn as_debug(&self) -> &dyn fmt::Debug {
        self
    }

    fn render(&self) -> DisplayCow<'_> {
        match &self.0 {
            Json::Null => DisplayCow::Borrowed(&""),
            Json::Bool(b) => b.render(),
            Json::Number(n) => {
                DisplayCow::Owned(Box::new(Rendered(JsonNode::number(n).render().to_string())))
            }
            Json::String(s) => s.render(),
            _ => DisplayCow::Owned(Box::new(Rendered(self.to_value().render().to_string()))),
        }
    }

    fn source(&self) -> DisplayCow<'_> {
        match &self.0 {
            Json::Null => DisplayCow::Borrowed(&"nil"),
            Json::Bool(b) => b.source(),
            Json::Number(n) => {
                DisplayCow::Owned(Box::new(Rendered(JsonNode::number(n).source().to_string())))
            }
            Json::String(s) => s.source(),
            _ => DisplayCow::Owned(Box::new(Rendered(self.to_value().source().to_string()))),
        }
    }

    fn type_name(&self) -> &'static str {
        match &self.0 {
            Json::Null => "nil",
            Json::Bool(b) => b.type_name(),
            Json::Number(n) => JsonNode::number(n).type_name(),
            Json::String(s) => s.type_name(),
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    }

    fn query_state(&self, state: State) -> bool {
        match &self.0 {
            Json::Null => !matches!(state, State::Truthy),
            Json::Bool(b) => b.query_state(state),
            Json::Number(n) => JsonNode::number(n).query_state(state),
            Json::String(s) => s.query_state(state),
            _ => match state {
                State::Truthy => true,
                State::DefaultValue | State::Empty | State::Blank => self.is_empty_container(),
            },
        }
    }

    fn to_kstr(&self) -> KStringCow<'_> {
        match &self.0 {
            Json::Null => KStringCow::from_static(""),
            Json::Bool(b) => b.to_kstr(),
            Json::Number(n) => KStringCow::from_string(JsonNode::number(n).to_kstr().to_string()),
            Json::String(s) => s.to_kstr(),
            _ => KStringCow::from_string(self.render().to_string()),
        }
    }

    fn to_value(&self) -> Value {
        match &self.0 {
            Json::Null => Value::Nil,
            Json::Bool(b) => b.to_value(),
            Json::Number(n) => JsonNode::number(n).to_value(),
            Json::String(s) => s.to_value(),
            Json::Array(items) => Value::array(items.iter().map(|v| JsonNode::new(v).to_value())),
            Json::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone().into(), JsonNode::new(v).to_value()))
                    .collect(),
            ),
        }
    }

    fn as_scalar(&self) -> Option<ScalarCow<'_>> {
        match &self.0 {
            Json::Bool(b) => b.as_scalar(),
            Json::Number(n) => Some(JsonNode::number(n)),
            Json::String(s) => s.as_scalar(),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<&dyn ArrayView> {
        match &self.0 {
            Json::Array(_) => Some(self),
            _ => None,
        }
    }

    fn as_object(&self) -> Option<&dyn ObjectView> {
        match &self.0 {
            Json::Object(_) | Json::Null => Some(self),
            _ => None,
        }
    }

    fn is_nil(&self) -> bool {
        matches!(self.0, Json::Null)
    }
}

impl ArrayView for JsonNode {
    fn as_value(&self) -> &dyn ValueView {
        self
    }

    fn size(&self) -> i64 {
        match &self.0 {
            Json::Array(items) => items.len() as i64,
            _ => 0,
        }
    }

    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        match &self.0 {
            Json::Array(items) => {
                Box::new(items.iter().map(|v| JsonNode::new(v) as &dyn ValueView))
            }
            _ => Box::new(std::iter::empty()),
        }
    }

    fn contains_key(&self, index: i64) -> bool {
        self.get_index(index).is_some()
    }

    fn get(&self, index: i64) -> Option<&dyn ValueView> {
        Some(match self.get_index(index) {
            Some(node) => node,
            None => &MISSING,
        })
    }
}

impl ObjectView for JsonNode {
    fn as_value(&self) -> &dyn ValueView {
        self
    }

    fn size(&self) -> i64 {
        match &self.0 {
            Json::Object(map) => map.len() as i64,
            _ => 0,
        }
    }

    fn keys<'k>(&'k self) -> Box<dyn Iterator<Item = KStringCow<'k>> + 'k> {
        match &self.0 {
            Json::Object(map) => Box::new(map.keys().map(|k| KStringCow::from_ref(k.as_str()))),
            _ => Box::new(std::iter::empty()),
        }
    }

    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        match &self.0 {
            Json::Object(map) => Box::new(map.values().map(|v| JsonNode::new(v) as &dyn ValueView)),
            _ => Box::new(std::iter::empty()),
        }
    }

    fn iter<'k>(&'k self) -> Box<dyn Iterator<Item = (KStringCow<'k>, &'k dyn ValueView)> + 'k> {
        match &self.0 {
            Json::Object(map) => Box::new(map.iter().map(|(k, v)| {
                (
                    KStringCow::from_ref(k.as_str()),
                    JsonNode::new(v) as &dyn ValueView,
                )
            })),
            _ => Box::new(std::iter::empty()),
        }
    }

    /// Every key "exists": absent ones read as nil rather than failing the render.
    fn contains_key(&self, _index: &str) -> bool {
        true
    }

    fn get<'s>(&'s self, index: &str) -> Option<&'s dyn ValueView> {
        let found = match &self.0 {
            Json::Object(map) => map.get(index),
            _ => None,
        };
        match found {
            Some(json) => Some(JsonNode::new(json)),
            // Let Liquid's built-in `size` answer for objects without a `size` key.
            None if index == "size" => None,
            None => Some(&MISSING),
        }
    }
}

impl Node {
    /// A string leaf (what `from_json` makes of a JSON string).
    pub fn text(s: &str) -> Node {
        Node::Leaf(Value::scalar(s.to_owned()))
    }

    pub fn from_json(value: &Json) -> Node {
        match value {
            // `null` reads exactly like an absent key (and stays indexable).
            Json::Null => Node::Missing,
            Json::Bool(b) => Node::Leaf(Value::scalar(*b)),
            Json::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => Node::Leaf(Value::scalar(i)),
                (None, Some(f)) => Node::Leaf(Value::scalar(f)),
                (None, None) => Node::Leaf(Value::scalar(n.to_string())),
            },
            Json::String(s) => Node::Leaf(Value::scalar(s.clone())),
            Json::Array(items) => Node::List(items.iter().map(Node::from_json).collect()),
            Json::Object(map) => Node::Map(
                map.iter()
                    .map(|(k, v)| (k.clone(), Node::from_json(v)))
                    .collect(),
            ),
        }
    }

    fn is_empty_container(&self) -> bool {
        match self {
            Node::List(items) => items.is_empty(),
            Node::Map(map) => map.is_empty(),
            Node::Missing => true,
            Node::Leaf(_) => false,
        }
    }
}

/// Renders a container the way `liquid` renders its own arrays and objects.
struct Rendered(String);

impl fmt::Display for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl ValueView for Node {
    fn as_debug(&self) -> &dyn fmt::Debug {
        self
    }

    fn render(&self) -> DisplayCow<'_> {
        match self {
            Node::Leaf(v) => v.render(),
            Node::Missing => DisplayCow::Borrowed(&""),
            _ => DisplayCow::Owned(Box::new(Rendered(self.to_value().render().to_string()))),
        }
    }

    fn source(&self) -> DisplayCow<'_> {
        match self {
            Node::Leaf(v) => v.source(),
            Node::Missing => DisplayCow::Borrowed(&"nil"),
            _ => DisplayCow::Owned(Box::new(Rendered(self.to_value().source().to_string()))),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Node::Leaf(v) => v.type_name(),
            Node::List(_) => "array",
            Node::Map(_) => "object",
            Node::Missing => "nil",
        }
    }

    fn query_state(&self, state: State) -> bool {
        match self {
            Node::Leaf(v) => v.query_state(state),
            Node::Missing => !matches!(state, State::Truthy),
            _ => match state {
                State::Truthy => true,
                State::DefaultValue | State::Empty | State::Blank => self.is_empty_container(),
            },
        }
    }

    fn to_kstr(&self) -> KStringCow<'_> {
        match self {
            Node::Leaf(v) => v.to_kstr(),
            Node::Missing => KStringCow::from_static(""),
            _ => KStringCow::from_string(self.render().to_string()),
        }
    }

    fn to_value(&self) -> Value {
        match self {
            Node::Leaf(v) => v.clone(),
            Node::Missing => Value::Nil,
            Node::List(items) => Value::array(items.iter().map(ValueView::to_value)),
            Node::Map(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone().into(), v.to_value()))
                    .collect(),
            ),
        }
    }

    fn as_scalar(&self) -> Option<ScalarCow<'_>> {
        match self {
            Node::Leaf(v) => v.as_scalar(),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<&dyn ArrayView> {
        match self {
            Node::List(_) => Some(self),
            _ => None,
        }
    }

    fn as_object(&self) -> Option<&dyn ObjectView> {
        match self {
            Node::Map(_) | Node::Missing => Some(self),
            _ => None,
        }
    }

    fn is_nil(&self) -> bool {
        match self {
            Node::Leaf(v) => v.is_nil(),
            Node::Missing => true,
            _ => false,
        }
    }
}

impl ArrayView for Node {
    fn as_value(&self) -> &dyn ValueView {
        self
    }

    fn size(&self) -> i64 {
        match self {
            Node::List(items) => items.len() as i64,
            _ => 0,
        }
    }

    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        match self {
            Node::List(items) => Box::new(items.iter().map(|n| n as &dyn ValueView)),
            _ => Box::new(std::iter::empty()),
        }
    }

    fn contains_key(&self, index: i64) -> bool {
        self.get_index(index).is_some()
    }

    fn get(&self, index: i64) -> Option<&dyn ValueView> {
        Some(self.get_index(index).unwrap_or(&MISSING))
    }
}

impl Node {
    fn get_index(&self, index: i64) -> Option<&Node> {
        let Node::List(items) = self else {
            return None;
        };
        let len = items.len() as i64;
        let i = if index < 0 { len + index } else { index };
        usize::try_from(i)
            .ok()
            .and_then(|i| <[Node]>::get(items.as_slice(), i))
    }
}

impl ObjectView for Node {
    fn as_value(&self) -> &dyn ValueView {
        self
    }

    fn size(&self) -> i64 {
        match self {
            Node::Map(map) => map.len() as i64,
            _ => 0,
        }
    }

    fn keys<'k>(&'k self) -> Box<dyn Iterator<Item = KStringCow<'k>> + 'k> {
        match self {
            Node::Map(map) => Box::new(map.keys().map(|k| KStringCow::from_ref(k.as_str()))),
            _ => Box::new(std::iter::empty()),
        }
    }

    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        match self {
            Node::Map(map) => Box::new(map.values().map(|n| n as &dyn ValueView)),
            _ => Box::new(std::iter::empty()),
        }
    }

    fn iter<'k>(&'k self) -> Box<dyn Iterator<Item = (KStringCow<'k>, &'k dyn ValueView)> + 'k> {
        match self {
            Node::Map(map) => Box::new(
                map.iter()
                    .map(|(k, v)| (KStringCow::from_ref(k.as_str()), v as &dyn ValueView)),
            ),
            _ => Box::new(std::iter::empty()),
        }
    }

    /// Every key "exists": absent ones read as nil rather than failing the render.
    fn contains_key(&self, _index: &str) -> bool {
        true
    }

    fn get<'s>(&'s self, index: &str) -> Option<&'s dyn ValueView> {
        let found = match self {
            Node::Map(map) => map.get(index),
            _ => None,
        };
        match found {
            Some(node) => Some(node),
            // Let Liquid's built-in `size` answer for objects without a `size` key.
            None if index == "size" => None,
            None => Some(&MISSING),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(source: &str, scope: Json) -> String {
        let parser = liquid::ParserBuilder::with_stdlib()
            .build()
            .expect("parser");
        let template = parser.parse(source).expect("parses");
        template
            .render(Scope::new(&scope).as_object())
            .expect("renders")
    }

    #[test]
    fn recording_notes_every_top_level_lookup() {
        let parser = liquid::ParserBuilder::with_stdlib()
            .build()
            .expect("parser");
        let scope = Scope::new(&json!({"data": {"a": 1}, "recipient": {"name": "Ann"}}));
        let read = |source: &str| {
            let template = parser.parse(source).expect("parses");
            scope.record();
            template.render(scope.as_object()).expect("renders");
            let mut names = scope.take_reads().names;
            names.sort();
            names
        };
        assert_eq!(read("{{ data.a }} {{ data.b }}"), ["data"]);
        assert_eq!(read("{{ missing }}{{ data }}"), ["data", "missing"]);
        assert_eq!(
            read("{% if data.a %}{{ recipient.name }}{% endif %}"),
            ["data", "recipient"]
        );
        assert_eq!(read("plain text"), Vec::<String>::new());
        assert!(
            scope.take_reads().everything,
            "not recording: nothing is known"
        );
    }

    /// Renders `source` with `recipient` converted into the tree and read in place.
    fn both_ways(
        source: &str,
        recipient: &Json,
    ) -> (Result<String, String>, Result<String, String>) {
        let parser = liquid::ParserBuilder::with_stdlib()
            .build()
            .expect("parser");
        let template = parser.parse(source).expect("parses");
        let shared = shared_entries(&json!({"data": {"k": "name", "i": 1}}));
        let converted = Scope::with_shared(shared.clone(), &json!({"recipient": recipient}));
        let mut own = BTreeMap::new();
        own.insert("recipient".to_owned(), Own::Json(JsonNode::new(recipient)));
        let in_place = Scope::from_nodes(shared, own);
        let run = |scope: &Scope<'_>| {
            template
                .render(scope.as_object())
                .map_err(|e| e.to_string())
        };
        (run(&converted), run(&in_place))
    }

    #[test]
    fn json_read_in_place_renders_as_the_converted_tree() {
        let recipient = json!({
            "id": "u1", "name": "Ann \"A\" <b>", "empty": "", "blank": "  ", "nothing": null,
            "n": 42, "neg": -7, "big": 18446744073709551615u64, "f": 2.5, "f0": 1.0,
            "t": true, "no": false,
            "list": [3, "b", null, {"x": 1}, [1, 2], 1.5, false],
            "none": [], "obj": {"z": 1, "a": {"deep": "yes"}, "m": null, "size": 9},
            "o2": {"b": 2, "a": 1}, "eo": {},
            "created_at": "2026-11-30T10:00:00Z",
        });
        let sources = [
            "{{ recipient.name }}|{{ recipient.missing }}|{{ recipient.missing.deeper }}",
            "{{ recipient.n }} {{ recipient.neg }} {{ recipient.big }} {{ recipient.f }} {{ recipient.f0 }}",
            // (A whole object with 2+ keys renders and loops in `liquid`'s hash order,
            // which differs between renders whichever way the scope holds it: not
            // compared.)
            "{{ recipient.t }} {{ recipient.no }} {{ recipient.nothing }} {{ recipient.list }} {{ recipient.obj.a }}",
            "{{ recipient.eo }}{{ recipient.none }}{{ recipient.list[3] }}",
            "{% for k in recipient.obj.a %}[{{ k }}]{% endfor %}{% for i in recipient.list %}<{{ i }}>{% endfor %}",
            "{{ recipient.list[0] }}{{ recipient.list[-1] }}{{ recipient.list[99] }}{{ recipient.list[3].x }}",
            "{{ recipient.list.size }} {{ recipient.obj.size }} {{ recipient.o2.size }} {{ recipient.name.size }}",
            "{{ recipient.list.first }} {{ recipient.list.last }} {{ recipient.none.first }}",
            "{% if recipient.t %}T{% endif %}{% if recipient.no %}N{% endif %}{% if recipient.nothing %}X{% endif %}",
            "{% if recipient.empty == empty %}E{% endif %}{% if recipient.blank == blank %}B{% endif %}{% if recipient.none == empty %}Z{% endif %}{% if recipient.eo == empty %}O{% endif %}",
            "{% if recipient.n == 42 %}a{% endif %}{% if recipient.n > 40 %}b{% endif %}{% if recipient.f < 3 %}c{% endif %}{% if recipient.name contains 'Ann' %}d{% endif %}{% if recipient.list contains 'b' %}e{% endif %}",
            "{% if recipient.nothing == nil %}n{% endif %}{% if recipient.missing == nil %}m{% endif %}{% unless recipient.nothing %}u{% endunless %}",
            "{{ recipient.nothing | default: 'dflt' }} {{ recipient.no | default: 'dno' }} {{ recipient.empty | default: 'de' }} {{ recipient.none | default: 'dl' }}",
            "{{ recipient.name | upcase | append: recipient.n }} {{ recipient.n | plus: recipient.f }} {{ recipient.f | times: 2 }}",
            "{{ recipient.list | join: ',' }} {{ recipient.list | size }} {{ recipient.obj | size }} {{ recipient.list | compact | size }}",
            "{{ recipient.created_at | date: '%Y' }} {{ recipient.name | escape }} {{ recipient.obj.a | size }}",
            "{% assign x = recipient.obj.a %}{{ x.deep }}{% capture c %}{{ recipient.id }}{% endcapture %}{{ c }}",
            "{{ recipient[data.k] }} {{ recipient.list[data.i] }} {{ recipient.obj['a'].deep }}",
            "{{ recipient.list | sort | join: ',' }}",
            "{{ recipient.list | first | plus: 1 }} {{ recipient.neg | abs }} {{ recipient.big | plus: 1 }}",
            "{{ recipient.name | plus: 1 }}{{ recipient.list | slice: 1, 2 | join: '-' }}",
            "{{ recipient.n | divided_by: 0 }}",
            "{% for x in recipient.name %}{{ x }}{% endfor %}{% for x in recipient.n %}{{ x }}{% endfor %}",
            "{{ recipient.obj.a | map: 'deep' }} {{ recipient.list | where: 'x', 1 | size }}",
            "{{ recipient.list | map: 'x' | join: ',' }}",
        ];
        for source in sources {
            let (converted, in_place) = both_ways(source, &recipient);
            assert_eq!(converted, in_place, "{source}");
        }
        // Any JSON as the recipient itself, not only an object.
        for recipient in [
            json!(null),
            json!("s"),
            json!(3),
            json!(false),
            json!([1, {"a": 2}]),
        ] {
            for source in [
                "[{{ recipient }}]",
                "{{ recipient.a }}{{ recipient[0] }}{{ recipient.size }}",
                "{% if recipient %}y{% else %}n{% endif %}{% for x in recipient %}<{{ x }}>{% endfor %}",
            ] {
                let (converted, in_place) = both_ways(source, &recipient);
                assert_eq!(converted, in_place, "{source} over {recipient}");
            }
        }
    }

    #[test]
    fn missing_variables_render_as_nothing_at_any_depth() {
        let scope = json!({"data": {"a": 1}, "recipient": {"id": "u1"}});
        assert_eq!(render("[{{ recipient.name }}]", scope.clone()), "[]");
        assert_eq!(render("[{{ data.x.y.z }}]", scope.clone()), "[]");
        assert_eq!(render("[{{ nothing }}]", scope.clone()), "[]");
        assert_eq!(render("[{{ data.list[3] }}]", scope.clone()), "[]");
        assert_eq!(render("{{ data.a }}", scope), "1");
    }

    #[test]
    fn defaults_conditionals_and_loops_behave_like_liquid() {
        let scope = json!({"data": {"items": ["a", "b"], "flag": false, "n": 2.5}});
        assert_eq!(
            render("{{ recipient.name | default: 'there' }}", scope.clone()),
            "there"
        );
        assert_eq!(
            render(
                "{% if data.missing %}y{% else %}n{% endif %}",
                scope.clone()
            ),
            "n"
        );
        assert_eq!(
            render(
                "{% for i in data.items %}{{ i }}{% endfor %}",
                scope.clone()
            ),
            "ab"
        );
        assert_eq!(render("{{ data.items.size }}", scope.clone()), "2");
        assert_eq!(render("{{ data.items | size }}", scope.clone()), "2");
        assert_eq!(render("{{ data.n }}", scope.clone()), "2.5");
        assert_eq!(
            render("{% if data.flag %}y{% else %}n{% endif %}", scope.clone()),
            "n"
        );
        assert_eq!(render("{{ data.items.first | upcase }}", scope), "A");
        assert_eq!(render("[{{ actor.name }}]", json!({"actor": null})), "[]");
    }
}

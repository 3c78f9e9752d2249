//! The render budget (`budget.rs`, `loops.rs`, `capture.rs`): each bound, and that the budgeted tags
//! render what liquid's own do.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::budget::{MAX_LOOP_ITERATIONS, OVER_BUDGET};
use super::filters::parser;
use super::test_support::template;
use crate::engine::scope::Scope;

/// Renders `source` with `data` through a whole template (as a step does); the body's
/// HTML or the render error's text.
fn body(source: &str, data: Value) -> Result<String, String> {
    let t = template(source, None, &[]);
    t.render(&Scope::new(&json!({"data": data})))
        .map(|b| b[0]["rendered"].as_str().unwrap_or_default().to_owned())
        .map_err(|e| e.to_string())
}

/// Asserts `source` fails on the budget, naming `what`, in well under a second.
fn over_budget(source: &str, data: Value, what: &str) {
    let started = Instant::now();
    let error = body(source, data).expect_err(source);
    assert!(error.contains(OVER_BUDGET), "{source}: {error}");
    assert!(error.contains(what), "{source}: {error}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{source} took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_range_over_the_budget_fails_before_it_exists() {
    // 1e9 numbers would take > 30 GB as liquid `Value`s: failing fast means none exist.
    over_budget(
        "{% for i in (1..data.n) %}{% endfor %}",
        json!({"n": 1_000_000_000}),
        "a range of 1000000000 items",
    );
    over_budget(
        "{% tablerow i in (1..data.n) %}{% endtablerow %}",
        json!({"n": 1_000_000_000_000_i64}),
        "a range of",
    );
    over_budget(
        "{% for i in (data.a..data.b) %}{% endfor %}",
        json!({"a": i64::MIN, "b": i64::MAX}),
        "a range of",
    );
    // `limit` and `offset` apply before the check, so a sliced huge range is fine.
    assert_eq!(
        body(
            "{% for i in (1..data.n) offset: 2 limit: 3 %}{{ i }},{% endfor %}",
            json!({"n": 1_000_000_000})
        )
        .as_deref(),
        Ok("<p>3,4,5,</p>\n")
    );
    let at_limit = format!("{{% for i in (1..{MAX_LOOP_ITERATIONS}) %}}{{% endfor %}}x");
    assert!(body(&at_limit, json!({})).is_ok());
}

#[test]
fn nested_loops_share_one_iteration_budget() {
    over_budget(
        "{% for i in (1..100) %}{% for j in (1..100) %}{% for k in (1..100) %}\
         {% endfor %}{% endfor %}{% endfor %}",
        json!({}),
        "loop iterations",
    );
    // Arrays from data count the same way.
    let items: Vec<u32> = (0..200).collect();
    over_budget(
        "{% for a in data.items %}{% for b in data.items %}{% endfor %}{% endfor %}",
        json!({"items": items}),
        "loop iterations",
    );
    assert!(
        body(
            "{% for a in (1..50) %}{% for b in (1..50) %}{% endfor %}{% endfor %}ok",
            json!({})
        )
        .is_ok()
    );
}

#[test]
fn strings_doubled_by_filters_or_captures_hit_the_byte_budget() {
    over_budget(
        "{% assign s = 'ab' %}{% for i in (1..64) %}{% assign s = s | append: s %}{% endfor %}\
         {{ s | size }}",
        json!({}),
        "added more than",
    );
    over_budget(
        "{% assign s = 'ab' %}{% for i in (1..64) %}{% assign s = s | prepend: s %}{% endfor %}",
        json!({}),
        "added more than",
    );
    over_budget(
        "{% assign s = 'ab' %}{% for i in (1..64) %}\
         {% capture s %}{{ s }}{{ s }}{% endcapture %}{% endfor %}",
        json!({}),
        "added more than",
    );
    // Without a loop: each `replace` multiplies the string by ten.
    let chain = "| replace: 'a', 'aaaaaaaaaa' ".repeat(12);
    over_budget(
        &format!("{{% assign s = 'a' {chain}%}}{{{{ s | size }}}}"),
        json!({}),
        "added more than",
    );
    // Arrays doubled with `concat`.
    over_budget(
        "{% assign a = data.a %}{% for i in (1..64) %}{% assign a = a | concat: a %}{% endfor %}",
        json!({"a": ["x"]}),
        "added more than",
    );
}

#[test]
fn filters_that_do_not_grow_their_input_cost_nothing() {
    // 2 MB of data, above the byte budget, sorted, mapped and measured.
    let items: Vec<Value> = (0..20_000)
        .map(|i| json!({"name": format!("{i:0>90}")}))
        .collect();
    let out = body(
        "{% assign s = data.items | sort: 'name' | map: 'name' %}{{ s | size }} {{ s | first | size }}",
        json!({"items": items}),
    );
    assert_eq!(out.as_deref(), Ok("<p>20000 90</p>\n"));
    // Building a list a piece at a time, the common capture idiom, stays well inside.
    let names: Vec<String> = (0..1_000).map(|i| format!("name-{i}")).collect();
    let out = body(
        "{% capture list %}{% endcapture %}{% for n in data.names %}\
         {% capture list %}{{ list }}{{ n }},{% endcapture %}{% endfor %}{{ list | size }}",
        json!({"names": names}),
    );
    assert!(out.is_ok(), "{out:?}");
}

#[test]
fn a_render_that_runs_too_long_fails_on_time() {
    // Within the iteration and byte budgets, but each iteration sorts 20,000 items.
    let items: Vec<u32> = (0..20_000).rev().collect();
    over_budget(
        "{% for i in (1..5000) %}{% assign x = data.items | sort %}{% endfor %}",
        json!({"items": items}),
        "rendering took more than",
    );
}

#[test]
fn partials_fail_when_rendered() {
    for source in [
        "{% include 'x' %}",
        "{% render 'x' for (1..1000000000) as i %}",
    ] {
        let error = body(source, json!({})).expect_err(source);
        assert!(error.contains("partials are not supported"), "{error}");
    }
}

/// The budgeted blocks render exactly what liquid's own render.
#[test]
fn budgeted_blocks_render_as_liquids_own() {
    let stock = liquid::ParserBuilder::with_stdlib()
        .build()
        .expect("liquid's parser");
    let globals = liquid::object!({
        "a": [1, 2, 3, 4, 5],
        "h": {"x": 1, "y": "two"},
        "empty": [],
        "n": 4,
    });
    for source in [
        "{% for i in a %}{{ forloop.index }}/{{ forloop.index0 }}/{{ forloop.rindex }}/\
         {{ forloop.rindex0 }}/{{ forloop.first }}/{{ forloop.last }}/{{ forloop.length }}:{{ i }} {% endfor %}",
        "{% for i in a reversed %}{{ i }}{% endfor %}",
        "{% for i in a offset: 1 limit: 2 %}{{ i }}{% endfor %}",
        "{% for i in a offset: 9 %}{{ i }}{% else %}none{% endfor %}",
        "{% for i in empty %}{{ i }}{% else %}empty{% endfor %}",
        "{% for p in h %}{{ p[0] }}={{ p[1] }};{% endfor %}",
        "{% for i in (1..n) %}{% for j in (i..n) %}{{ forloop.parentloop.index }}{{ j }},{% endfor %}{% endfor %}",
        "{% for i in (3..1) %}x{% else %}backwards{% endfor %}",
        "{% for i in (-2..2) %}{{ i }}{% endfor %}",
        "{% for i in a %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}",
        "{% tablerow i in a cols: 2 %}{{ i }}{{ tablerow.col_first }}{{ tablerow.col_last }}{% endtablerow %}",
        "{% tablerow i in (1..3) %}{{ i }}{{ tablerow.index }}{{ tablerow.col }}{% endtablerow %}",
        "{% tablerow i in a limit: 2 offset: 1 %}{{ i }}{% endtablerow %}",
        "{% capture x %}{{ n }}-{% for i in a %}{{ i }}{% endfor %}{% endcapture %}[{{ x }}]",
        "{% assign s = 'a,b' | split: ',' | join: '+' | append: '!' | upcase %}{{ s }}",
    ] {
        let expected = stock
            .parse(source)
            .and_then(|t| t.render(&globals))
            .unwrap_or_else(|e| panic!("liquid: {source}: {e}"));
        let ours = parser()
            .parse(source)
            .and_then(|t| t.render(&globals))
            .unwrap_or_else(|e| panic!("ours: {source}: {e}"));
        assert_eq!(ours, expected, "{source}");
    }
    // Parse errors are liquid's.
    for source in [
        "{% for %}{% endfor %}",
        "{% for i a %}{% endfor %}",
        "{% for i in a bogus %}{% endfor %}",
        "{% tablerow i in a rows: 2 %}{% endtablerow %}",
        "{% capture %}{% endcapture %}",
        "{% capture a b %}{% endcapture %}",
    ] {
        assert!(stock.parse(source).is_err(), "liquid accepts {source}");
        assert!(parser().parse(source).is_err(), "we accept {source}");
    }
}

#[test]
fn a_limit_past_the_items_does_not_pad_the_loop() {
    // liquid's own loop pads to `limit` with empty items, so this allocates 1e9 of them.
    let out = body(
        "{% for x in data.a limit: 1000000000 %}{{ x }}{% endfor %}",
        json!({"a": [1, 2]}),
    );
    assert_eq!(out.as_deref(), Ok("<p>12</p>\n"));
}

//! Liquid's `for` and `tablerow` blocks, as liquid writes them but charged to the
//! render's [`budget`](super::budget).
//!
//! The tags parse exactly as liquid's own (the same syntax and errors) and render the
//! same output, with two differences: a range is checked against the iterations left
//! before its numbers exist (`limit`/`offset` applied to it arithmetically), and a
//! `limit` beyond the items no longer pads the loop with empty items (liquid's does).

use std::io::Write;

use liquid_core::error::{ResultLiquidExt, ResultLiquidReplaceExt};
use liquid_core::model::{KString, ObjectView, Scalar, Value, ValueCow, ValueView};
use liquid_core::parser::{BlockElement, TryMatchToken};
use liquid_core::runtime::{Interrupt, InterruptRegister, StackFrame};
use liquid_core::{
    BlockReflection, Error, Expression, Language, ParseBlock, Renderable, Result, Runtime,
    TagBlock, TagTokenIter, Template,
};
use liquid_lib::stdlib::{Range, RangeExpression};

use super::budget::{charge_iterations, check_range};

/// `{% for item in items|(a..b) [limit: n] [offset: n] [reversed] %}…[{% else %}…]{% endfor %}`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ForBlock;

/// `{% tablerow item in items|(a..b) [cols: n] [limit: n] [offset: n] %}…{% endtablerow %}`.
#[derive(Clone, Copy, Debug, Default)]
pub struct TableRowBlock;

impl BlockReflection for ForBlock {
    fn start_tag(&self) -> &str {
        "for"
    }
    fn end_tag(&self) -> &str {
        "endfor"
    }
    fn description(&self) -> &str {
        "a loop, within the render's iteration budget"
    }
}

impl BlockReflection for TableRowBlock {
    fn start_tag(&self) -> &str {
        "tablerow"
    }
    fn end_tag(&self) -> &str {
        "endtablerow"
    }
    fn description(&self) -> &str {
        "an HTML table loop, within the render's iteration budget"
    }
}

/// The loop header both loops share: `name in range`.
fn parse_header<'a>(arguments: &mut TagTokenIter<'a>) -> Result<(KString, RangeExpression)> {
    let var_name = arguments
        .expect_next("Identifier expected.")?
        .expect_identifier()
        .into_result()?;
    arguments
        .expect_next("\"in\" expected.")?
        .expect_str("in")
        .into_result_custom_msg("\"in\" expected.")?;
    let range = arguments.expect_next("Array or range expected.")?;
    let range = match range.expect_value() {
        TryMatchToken::Matches(array) => RangeExpression::Array(array),
        TryMatchToken::Fails(range) => match range.expect_range() {
            TryMatchToken::Matches((start, stop)) => RangeExpression::Counted(start, stop),
            TryMatchToken::Fails(range) => return range.raise_error().into_err(),
        },
    };
    Ok((KString::from_ref(var_name), range))
}

/// `: value` after a parameter name.
fn parse_attr(arguments: &mut TagTokenIter<'_>) -> Result<Expression> {
    arguments
        .expect_next("\":\" expected.")?
        .expect_str(":")
        .into_result_custom_msg("\":\" expected.")?;
    arguments
        .expect_next("Value expected.")?
        .expect_value()
        .into_result()
}

fn evaluate_attr(attr: &Option<Expression>, runtime: &dyn Runtime) -> Result<Option<usize>> {
    let Some(attr) = attr else { return Ok(None) };
    let value = attr.evaluate(runtime)?;
    let n = value
        .as_scalar()
        .and_then(|s| s.to_integer())
        .ok_or_else(|| {
            Error::with_msg(format!(
                "Expected whole number, found `{}`",
                value.type_name()
            ))
        })?;
    Ok(Some(usize::try_from(n).unwrap_or(0)))
}

/// The items a loop visits, within the iterations left: a counted range is sliced by
/// `offset`/`limit` as numbers and checked before any item exists.
fn loop_items<'r>(
    range: &'r RangeExpression,
    runtime: &'r dyn Runtime,
    limit: Option<usize>,
    offset: usize,
) -> Result<Vec<ValueCow<'r>>> {
    match range.evaluate(runtime)? {
        Range::Counted(start, stop) => {
            let len = (i128::from(stop) - i128::from(start) + 1).max(0);
            let skip = len.min(offset as i128);
            let take = limit.map_or(len - skip, |l| (l as i128).min(len - skip));
            check_range(runtime, u64::try_from(take).unwrap_or(u64::MAX))?;
            let first = i128::from(start) + skip;
            Ok((0..take)
                .filter_map(|i| i64::try_from(first + i).ok())
                .map(|n| ValueCow::Owned(Value::scalar(n)))
                .collect())
        }
        array @ Range::Array(_) => {
            let mut items = array_items(array)?;
            let skip = offset.min(items.len());
            items.drain(..skip);
            items.truncate(limit.unwrap_or(usize::MAX));
            check_range(runtime, items.len() as u64)?;
            Ok(items)
        }
    }
}

/// An array's items, an object's `[key, value]` pairs, nothing for nil or empty.
fn array_items(range: Range<'_>) -> Result<Vec<ValueCow<'_>>> {
    let Range::Array(value) = range else {
        return Ok(Vec::new());
    };
    let items = match value {
        ValueCow::Owned(Value::Array(items)) => items.into_iter().map(ValueCow::Owned).collect(),
        ValueCow::Owned(other) => owned_items(&other)?,
        ValueCow::Borrowed(v) => {
            if let Some(array) = v.as_array() {
                array.values().map(ValueCow::Borrowed).collect()
            } else {
                owned_items(v)?
            }
        }
    };
    Ok(items)
}

fn owned_items(v: &dyn ValueView) -> Result<Vec<ValueCow<'static>>> {
    if let Some(array) = v.as_array() {
        Ok(array
            .values()
            .map(|v| ValueCow::Owned(v.to_value()))
            .collect())
    } else if let Some(object) = v.as_object() {
        Ok(object
            .iter()
            .map(|(k, v)| {
                ValueCow::Owned(Value::Array(vec![
                    Value::scalar(k.into_owned()),
                    v.to_value(),
                ]))
            })
            .collect())
    } else if v.is_state() || v.is_nil() {
        Ok(Vec::new())
    } else {
        Err(Error::with_msg(format!(
            "Expected array, found `{}`",
            v.type_name()
        )))
    }
}

impl ParseBlock for ForBlock {
    fn parse(
        &self,
        mut arguments: TagTokenIter<'_>,
        mut tokens: TagBlock<'_, '_>,
        options: &Language,
    ) -> Result<Box<dyn Renderable>> {
        let (var_name, range) = parse_header(&mut arguments)?;
        let (mut limit, mut offset, mut reversed) = (None, None, false);
        while let Some(token) = arguments.next() {
            match token.as_str() {
                "limit" => limit = Some(parse_attr(&mut arguments)?),
                "offset" => offset = Some(parse_attr(&mut arguments)?),
                "reversed" => reversed = true,
                _ => {
                    return token
                        .raise_custom_error("\"limit\", \"offset\" or \"reversed\" expected.")
                        .into_err();
                }
            }
        }
        arguments.expect_nothing()?;
        let mut item_template = Vec::new();
        let mut else_template = None;
        while let Some(element) = tokens.next()? {
            match element {
                BlockElement::Tag(mut tag) => match tag.name() {
                    "else" => {
                        tag.tokens().expect_nothing()?;
                        else_template = Some(tokens.parse_all(options)?);
                        break;
                    }
                    _ => item_template.push(tag.parse(&mut tokens, options)?),
                },
                element => item_template.push(element.parse(&mut tokens, options)?),
            }
        }
        tokens.assert_empty();
        Ok(Box::new(For {
            var_name,
            range,
            item_template: Template::new(item_template),
            else_template: else_template.map(Template::new),
            limit,
            offset,
            reversed,
        }))
    }

    fn reflection(&self) -> &dyn BlockReflection {
        self
    }
}

#[derive(Debug)]
struct For {
    var_name: KString,
    range: RangeExpression,
    item_template: Template,
    else_template: Option<Template>,
    limit: Option<Expression>,
    offset: Option<Expression>,
    reversed: bool,
}

/// `forloop`, as liquid's.
#[derive(Debug, Clone, liquid::ValueView, liquid::ObjectView)]
struct ForloopObject<'p> {
    length: i64,
    parentloop: Option<&'p dyn ValueView>,
    index0: i64,
    index: i64,
    rindex0: i64,
    rindex: i64,
    first: bool,
    last: bool,
}

impl Renderable for For {
    fn render_to(&self, writer: &mut dyn Write, runtime: &dyn Runtime) -> Result<()> {
        let trace = || format!("{{% for {} in {} %}}", self.var_name, self.range);
        let limit = evaluate_attr(&self.limit, runtime)?;
        let offset = evaluate_attr(&self.offset, runtime)?.unwrap_or(0);
        let mut items =
            loop_items(&self.range, runtime, limit, offset).trace_with(|| trace().into())?;
        if self.reversed {
            items.reverse();
        }
        if items.is_empty() {
            if let Some(t) = &self.else_template {
                t.render_to(writer, runtime)
                    .trace("{% else %}")
                    .trace_with(|| trace().into())?;
            }
            return Ok(());
        }
        let len = items.len() as i64;
        let parentloop = runtime.try_get(&[Scalar::new("forloop")]);
        let parentloop = parentloop.as_ref().map(|v| v.as_view());
        for (i, v) in items.into_iter().enumerate() {
            charge_iterations(runtime, 1).trace_with(|| trace().into())?;
            let i = i as i64;
            let forloop = ForloopObject {
                length: len,
                parentloop,
                index0: i,
                index: i + 1,
                rindex0: len - i - 1,
                rindex: len - i,
                first: i == 0,
                last: i == len - 1,
            };
            let mut root =
                std::collections::HashMap::<liquid::model::KStringRef<'_>, &dyn ValueView>::new();
            root.insert("forloop".into(), &forloop);
            root.insert(self.var_name.as_ref(), &v);
            let scope = StackFrame::new(runtime, &root);
            self.item_template
                .render_to(writer, &scope)
                .trace_with(|| trace().into())
                .context_key("index")
                .value_with(|| format!("{}", i + 1).into())?;
            let interrupt = scope.registers().get_mut::<InterruptRegister>().reset();
            if let Some(Interrupt::Break) = interrupt {
                break;
            }
        }
        Ok(())
    }
}

impl ParseBlock for TableRowBlock {
    fn parse(
        &self,
        mut arguments: TagTokenIter<'_>,
        mut tokens: TagBlock<'_, '_>,
        options: &Language,
    ) -> Result<Box<dyn Renderable>> {
        let (var_name, range) = parse_header(&mut arguments)?;
        let (mut cols, mut limit, mut offset) = (None, None, None);
        while let Some(token) = arguments.next() {
            match token.as_str() {
                "cols" => cols = Some(parse_attr(&mut arguments)?),
                "limit" => limit = Some(parse_attr(&mut arguments)?),
                "offset" => offset = Some(parse_attr(&mut arguments)?),
                _ => {
                    return token
                        .raise_custom_error("\"cols\", \"limit\" or \"offset\" expected.")
                        .into_err();
                }
            }
        }
        arguments.expect_nothing()?;
        let item_template = Template::new(tokens.parse_all(options)?);
        tokens.assert_empty();
        Ok(Box::new(TableRow {
            var_name,
            range,
            item_template,
            cols,
            limit,
            offset,
        }))
    }

    fn reflection(&self) -> &dyn BlockReflection {
        self
    }
}

#[derive(Debug)]
struct TableRow {
    var_name: KString,
    range: RangeExpression,
    item_template: Template,
    cols: Option<Expression>,
    limit: Option<Expression>,
    offset: Option<Expression>,
}

/// `tablerow`, as liquid's.
#[derive(Debug, Clone, liquid::ValueView, liquid::ObjectView)]
struct TableRowObject {
    length: i64,
    index0: i64,
    index: i64,
    rindex0: i64,
    rindex: i64,
    first: bool,
    last: bool,
    col0: i64,
    col: i64,
    col_first: bool,
    col_last: bool,
}

impl Renderable for TableRow {
    fn render_to(&self, writer: &mut dyn Write, runtime: &dyn Runtime) -> Result<()> {
        let trace = || format!("{{% tablerow {} in {} %}}", self.var_name, self.range);
        let cols = evaluate_attr(&self.cols, runtime)?;
        let limit = evaluate_attr(&self.limit, runtime)?;
        let offset = evaluate_attr(&self.offset, runtime)?.unwrap_or(0);
        let items =
            loop_items(&self.range, runtime, limit, offset).trace_with(|| trace().into())?;
        let len = items.len();
        let cols = cols.filter(|c| *c > 0).unwrap_or(len).max(1);
        for (i, v) in items.into_iter().enumerate() {
            charge_iterations(runtime, 1).trace_with(|| trace().into())?;
            let (col, row) = (i % cols, i / cols);
            let (i64i, len64) = (i as i64, len as i64);
            let last = i + 1 == len;
            let tablerow = TableRowObject {
                length: len64,
                index0: i64i,
                index: i64i + 1,
                rindex0: len64 - i64i - 1,
                rindex: len64 - i64i,
                first: i == 0,
                last,
                col0: col as i64,
                col: col as i64 + 1,
                col_first: col == 0,
                col_last: col + 1 == cols || last,
            };
            let mut root =
                std::collections::HashMap::<liquid::model::KStringRef<'_>, &dyn ValueView>::new();
            root.insert("tablerow".into(), &tablerow);
            root.insert(self.var_name.as_ref(), &v);
            if tablerow.col_first {
                write!(writer, "<tr class=\"row{}\">", row + 1).replace("Failed to render")?;
            }
            write!(writer, "<td class=\"col{}\">", col + 1).replace("Failed to render")?;
            let scope = StackFrame::new(runtime, &root);
            self.item_template
                .render_to(writer, &scope)
                .trace_with(|| trace().into())
                .context_key("index")
                .value_with(|| format!("{}", i + 1).into())?;
            write!(writer, "</td>").replace("Failed to render")?;
            if tablerow.col_last {
                write!(writer, "</tr>").replace("Failed to render")?;
            }
        }
        Ok(())
    }
}

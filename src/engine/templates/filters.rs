//! The Liquid parser: liquid's standard library with every loop, capture and filter
//! charged to the render's budget (`budget.rs`, `loops.rs`, `capture.rs`), and Knock's `t` filter and
//! tag (`translate.rs`).

use std::sync::OnceLock;

use liquid_lib::stdlib;

use super::budget::Budgeted;
use super::capture::{CaptureBlock, PartialTag};
use super::loops::{ForBlock, TableRowBlock};
use super::translate::{TFilter, TTag};

/// The one parser every template is compiled with: building it registers every tag and
/// filter, so it is built once.
pub(super) fn parser() -> &'static liquid::Parser {
    static PARSER: OnceLock<liquid::Parser> = OnceLock::new();
    PARSER.get_or_init(|| builder().build().unwrap_or_else(|_| liquid::Parser::new()))
}

/// Liquid's standard library (as `ParserBuilder::stdlib` lists it), budgeted.
fn builder() -> liquid::ParserBuilder {
    liquid::ParserBuilder::new()
        .tag(stdlib::AssignTag)
        .tag(stdlib::BreakTag)
        .tag(stdlib::ContinueTag)
        .tag(stdlib::CycleTag)
        .tag(PartialTag("include"))
        .tag(stdlib::IncrementTag)
        .tag(stdlib::DecrementTag)
        .tag(PartialTag("render"))
        .block(stdlib::RawBlock)
        .block(stdlib::IfBlock)
        .block(stdlib::UnlessBlock)
        .block(stdlib::IfChangedBlock)
        .block(ForBlock)
        .block(TableRowBlock)
        .block(stdlib::CommentBlock)
        .block(CaptureBlock)
        .block(stdlib::CaseBlock)
        .filter(Budgeted(stdlib::Abs))
        .filter(Budgeted(stdlib::Append))
        .filter(Budgeted(stdlib::AtLeast))
        .filter(Budgeted(stdlib::AtMost))
        .filter(Budgeted(stdlib::Capitalize))
        .filter(Budgeted(stdlib::Ceil))
        .filter(Budgeted(stdlib::Compact))
        .filter(Budgeted(stdlib::Concat))
        .filter(Budgeted(stdlib::Date))
        .filter(Budgeted(stdlib::Default))
        .filter(Budgeted(stdlib::DividedBy))
        .filter(Budgeted(stdlib::Downcase))
        .filter(Budgeted(stdlib::Escape))
        .filter(Budgeted(stdlib::EscapeOnce))
        .filter(Budgeted(stdlib::First))
        .filter(Budgeted(stdlib::Floor))
        .filter(Budgeted(stdlib::Join))
        .filter(Budgeted(stdlib::Last))
        .filter(Budgeted(stdlib::Lstrip))
        .filter(Budgeted(stdlib::Map))
        .filter(Budgeted(stdlib::Minus))
        .filter(Budgeted(stdlib::Modulo))
        .filter(Budgeted(stdlib::NewlineToBr))
        .filter(Budgeted(stdlib::Plus))
        .filter(Budgeted(stdlib::Prepend))
        .filter(Budgeted(stdlib::Remove))
        .filter(Budgeted(stdlib::RemoveFirst))
        .filter(Budgeted(stdlib::Replace))
        .filter(Budgeted(stdlib::ReplaceFirst))
        .filter(Budgeted(stdlib::Reverse))
        .filter(Budgeted(stdlib::Round))
        .filter(Budgeted(stdlib::Rstrip))
        .filter(Budgeted(stdlib::Size))
        .filter(Budgeted(stdlib::Slice))
        .filter(Budgeted(stdlib::Sort))
        .filter(Budgeted(stdlib::SortNatural))
        .filter(Budgeted(stdlib::Split))
        .filter(Budgeted(stdlib::Strip))
        .filter(Budgeted(stdlib::StripHtml))
        .filter(Budgeted(stdlib::StripNewlines))
        .filter(Budgeted(stdlib::Times))
        .filter(Budgeted(stdlib::Truncate))
        .filter(Budgeted(stdlib::TruncateWords))
        .filter(Budgeted(stdlib::Uniq))
        .filter(Budgeted(stdlib::Upcase))
        .filter(Budgeted(stdlib::UrlDecode))
        .filter(Budgeted(stdlib::UrlEncode))
        .filter(Budgeted(stdlib::Where))
        .filter(Budgeted(TFilter))
        .tag(TTag)
}

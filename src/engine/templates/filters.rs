//! The Liquid parser: the standard library, and the tags and filters Tidings adds.

use std::sync::OnceLock;

/// The one parser every template is compiled with: building it registers every tag and
/// filter, so it is built once.
pub(super) fn parser() -> &'static liquid::Parser {
    static PARSER: OnceLock<liquid::Parser> = OnceLock::new();
    PARSER.get_or_init(|| {
        liquid::ParserBuilder::with_stdlib()
            .build()
            .unwrap_or_else(|_| liquid::Parser::new())
    })
}

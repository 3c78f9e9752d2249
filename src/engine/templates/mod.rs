//! In-app templates: Liquid compiled once per workflow version, rendered per recipient
//! into Knock's feed `blocks` (§3.6): `body` (markdown → sanitized HTML), `action_url`
//! (text) and `actions` (button set).
//!
//! Invariant: every HTML string this module produces has passed through `ammonia`, and
//! every URL it produces has a safe scheme, so values from trigger `data` can never inject
//! script into a browser that renders `blocks[*].rendered` with `innerHTML`.
//!
//! Rendering once per run ([`InAppTemplate::render_memo`]): a run's recipients share most
//! of their scope (`data`, `actor`, `tenant`, `vars`, `workflow`); only a few top-level
//! names are the recipient's own (`recipient`, `timestamp`, `current_message`, and `data`
//! when it carries `$trigger_data`, batch variables after a batch). A part is rendered
//! with the scope recording its top-level lookups (`scope::Reads`: every lookup of the
//! render, in output, tags and filter arguments alike); when none of them is one of the recipient's
//! own names, its output — or its error — is kept in the run's [`TemplateMemo`] and
//! reused for every later recipient whose own names it did not read either. A part that
//! read the recipient (or the whole scope) is rendered per recipient from then on.
//! Rendering is deterministic in what it reads, so the reused output is what rendering
//! would have produced (filters reading the clock, `"now" | date`, see the instant of
//! the run's first render instead of each recipient's).

mod budget;
#[cfg(test)]
mod budget_tests;
mod capture;
mod compile;
mod filters;
mod loops;
mod memo;
mod render;
mod sanitize;
mod translate;

pub use memo::{LazyScope, RECIPIENT_NAMES, TemplateMemo};
pub use sanitize::{markdown_to_safe_html, safe_url};
pub use translate::with_translations;

/// One Liquid field: its source as a JSON string (the block's `content`, the same for
/// every recipient) and its compiled form.
struct Part {
    source_json: String,
    compiled: liquid::Template,
}

struct Button {
    label: Part,
    action: Part,
}

/// A compiled in-app feed template.
pub struct InAppTemplate {
    body: Part,
    action_url: Option<Part>,
    buttons: Vec<Button>,
}

/// Largest output of one template field (Liquid, before markdown): beyond it the step
/// fails with a recorded reason rather than storing and pushing megabytes per recipient.
pub const MAX_RENDERED_BYTES: usize = 64 * 1024;
/// Most HTML tags a rendered body may hold. The HTML sanitizer's tree builder costs
/// O(depth) per open element (the spec's "in scope" checks), so `<div>` × n is O(n²);
/// 2,000 tags bound that to milliseconds while leaving any real message far below.
pub const MAX_HTML_TAGS: usize = 2_000;

/// A template that failed while rendering (Liquid runtime errors such as bad filters).
#[derive(Debug, Clone, thiserror::Error)]
#[error("rendering `{field}` failed: {message}")]
pub struct RenderError {
    pub field: String,
    pub message: String,
}

#[cfg(test)]
mod test_support {
    use serde_json::{Value, json};

    use super::InAppTemplate;
    use crate::engine::scope::Scope;
    use crate::model::message::Blocks;
    use crate::model::workflow::{ButtonSource, InAppTemplateSource};

    pub fn template(body: &str, url: Option<&str>, buttons: &[(&str, &str)]) -> InAppTemplate {
        let src = InAppTemplateSource {
            markdown_body: body.into(),
            action_url: url.map(str::to_owned),
            action_buttons: buttons
                .iter()
                .map(|(l, a)| ButtonSource {
                    label: (*l).into(),
                    action: (*a).into(),
                })
                .collect(),
        };
        match InAppTemplate::compile(&src, "template") {
            Ok(t) => t,
            Err(e) => panic!("compile failed: {e:?}"),
        }
    }

    pub fn render(t: &InAppTemplate, data: Value) -> Blocks {
        match t.render(&Scope::new(&json!({"data": data}))) {
            Ok(v) => v,
            Err(e) => panic!("render failed: {e}"),
        }
    }
}

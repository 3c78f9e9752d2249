//! Compiling: each Liquid field of an in-app template parsed once per workflow version,
//! errors named by field.

use super::filters::parser;
use super::render::json_string;
use super::{Button, InAppTemplate, Part};
use crate::error::FieldError;
use crate::model::workflow::InAppTemplateSource;

fn compile_part(source: &str, field: String, errors: &mut Vec<FieldError>) -> Option<Part> {
    match parser().parse(source) {
        Ok(compiled) => Some(Part {
            source_json: json_string(source),
            compiled,
        }),
        Err(e) => {
            errors.push(FieldError::new(
                field,
                format!("is not valid Liquid: {}", first_line(&e.to_string())),
            ));
            None
        }
    }
}

pub(super) fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s).trim()
}

impl InAppTemplate {
    /// Compiles every Liquid field; errors name the field under `prefix` (e.g.
    /// `workflow.steps[0].template`).
    pub fn compile(src: &InAppTemplateSource, prefix: &str) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let body = compile_part(
            &src.markdown_body,
            format!("{prefix}.markdown_body"),
            &mut errors,
        );
        let action_url = src
            .action_url
            .as_deref()
            .map(|s| compile_part(s, format!("{prefix}.action_url"), &mut errors));
        let mut buttons = Vec::new();
        for (i, b) in src.action_buttons.iter().enumerate() {
            let label = compile_part(
                &b.label,
                format!("{prefix}.action_buttons[{i}].label"),
                &mut errors,
            );
            let action = compile_part(
                &b.action,
                format!("{prefix}.action_buttons[{i}].action"),
                &mut errors,
            );
            if let (Some(label), Some(action)) = (label, action) {
                buttons.push(Button { label, action });
            }
        }
        match (body, action_url) {
            (Some(body), None) if errors.is_empty() => Ok(InAppTemplate {
                body,
                action_url: None,
                buttons,
            }),
            (Some(body), Some(Some(url))) if errors.is_empty() => Ok(InAppTemplate {
                body,
                action_url: Some(url),
                buttons,
            }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_liquid_is_reported_per_field() {
        let src = InAppTemplateSource {
            markdown_body: "{% if %}".into(),
            action_url: Some("{{ data.url ".into()),
            action_buttons: vec![],
        };
        let errors = InAppTemplate::compile(&src, "workflow.steps[0].template")
            .err()
            .unwrap_or_default();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "workflow.steps[0].template.markdown_body",
                "workflow.steps[0].template.action_url"
            ]
        );
    }
}

//! `tidings workflows validate`: checks a knock-cli workflow directory exactly as `serve`
//! loads it (the same `loader` and the same parse + compile as `Registry::upsert`), but
//! collects EVERY problem instead of stopping at the first, each with its file and field.

use std::path::Path;

use super::loader::{self, WorkflowFile};
use super::registry;

/// One thing wrong with a workflow directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The file the problem is in (`<dir>/<key>/workflow.json`, or the directory).
    pub path: String,
    /// The field within the definition, when the problem has one.
    pub field: Option<String>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{}: `{field}` {}", self.path, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// Reads and checks every workflow under `dir`. Returns the workflows that are valid and
/// every problem found; the directory is deployable only when the problem list is empty.
pub fn validate_dir(dir: &Path) -> (Vec<WorkflowFile>, Vec<Problem>) {
    if !dir.is_dir() {
        let problem = Problem {
            path: dir.display().to_string(),
            field: None,
            message: "is not a directory".into(),
        };
        return (Vec::new(), vec![problem]);
    }
    let (files, load_errors) = loader::read_dir_all(dir);
    let mut problems: Vec<Problem> = load_errors
        .into_iter()
        .map(|e| Problem {
            path: e.path,
            field: None,
            message: e.message,
        })
        .collect();
    let mut valid = Vec::new();
    for file in files {
        match registry::validate(&file.key, &file.body) {
            Ok(()) => valid.push(file),
            Err(errors) => problems.extend(errors.into_iter().map(|e| Problem {
                path: file.path.display().to_string(),
                field: Some(e.field),
                message: e.message,
            })),
        }
    }
    (valid, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, text).expect("write");
    }

    #[test]
    fn every_problem_in_every_file_is_reported_with_its_file_and_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            &dir.path().join("good/workflow.json"),
            r#"{"name":"Good","steps":[{"ref":"s","type":"channel","channel_key":"in-app-feed",
                "template":{"markdown_body":"Hi"}}]}"#,
        );
        write(&dir.path().join("broken-json/workflow.json"), "{ nope");
        write(
            &dir.path().join("bad-liquid/workflow.json"),
            r#"{"name":"B","trigger_data_json_schema":{"type":12},
                "steps":[{"ref":"s","type":"channel","channel_key":"in-app-feed",
                "template":{"markdown_body":"{% if %}"}}]}"#,
        );
        write(
            &dir.path().join("bad-refs/workflow.json"),
            r#"{"name":"R","steps":[{"ref":"s","type":"channel","channel_key":"in-app-feed",
                "template":{"markdown_body@":"a.md","action_url@":"../../x"}}]}"#,
        );
        let (valid, problems) = validate_dir(dir.path());
        assert_eq!(
            valid.iter().map(|f| f.key.as_str()).collect::<Vec<_>>(),
            ["good"]
        );
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let has = |file: &str, text: &str| {
            shown
                .iter()
                .any(|p| p.contains(&format!("{file}/workflow.json")) && p.contains(text))
        };
        assert!(has("broken-json", "not valid JSON"), "{shown:#?}");
        assert!(
            has("bad-liquid", "steps[0].template.markdown_body"),
            "{shown:#?}"
        );
        assert!(has("bad-liquid", "trigger_data_json_schema"), "{shown:#?}");
        assert!(
            has("bad-refs", "steps[0].template.markdown_body@"),
            "{shown:#?}"
        );
        assert!(
            has("bad-refs", "steps[0].template.action_url@"),
            "{shown:#?}"
        );
        assert_eq!(problems.len(), 5, "{shown:#?}");
    }

    #[test]
    fn a_missing_directory_is_a_problem_not_an_empty_success() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, problems) = validate_dir(&dir.path().join("absent"));
        assert_eq!(problems.len(), 1);
    }
}

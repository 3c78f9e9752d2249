//! Reads a workflows directory in knock-cli's layout: `<dir>/<key>/workflow.json`, with
//! `"field@": "relative/file"` references replaced by the file's content (as
//! `knock workflow pull` writes them), and knock-cli's `__readonly` blocks dropped.
//!
//! Invariant: a reference can only reach files inside its own workflow folder, and every
//! failure names the file it came from, so a bad definition stops startup with a message
//! an operator can act on.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// The entry file of a workflow folder.
pub const WORKFLOW_FILE: &str = "workflow.json";

/// One workflow folder, read and with references resolved (not yet validated).
#[derive(Debug)]
pub struct WorkflowFile {
    /// The folder name, which is the workflow key.
    pub key: String,
    /// `<dir>/<key>/workflow.json`, for error messages.
    pub path: PathBuf,
    pub body: Value,
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct LoadError {
    pub path: String,
    pub message: String,
}

impl LoadError {
    fn new(path: &Path, message: impl Into<String>) -> Self {
        LoadError {
            path: path.display().to_string(),
            message: message.into(),
        }
    }
}

/// Reads every `<key>/workflow.json` under `dir`, sorted by key. A missing directory
/// holds no workflows; folders without a `workflow.json` are skipped. Stops at the first
/// broken file (what `serve` needs); [`read_dir_all`] reports every one.
pub fn read_dir(dir: &Path) -> Result<Vec<WorkflowFile>, LoadError> {
    let (files, mut errors) = read_dir_all(dir);
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(errors.swap_remove(0))
    }
}

/// Like [`read_dir`], but reads every folder and returns every error (several per file
/// when several references are broken), for `tidings workflows validate`.
pub fn read_dir_all(dir: &Path) -> (Vec<WorkflowFile>, Vec<LoadError>) {
    if !dir.exists() {
        return (Vec::new(), Vec::new());
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => return (Vec::new(), vec![LoadError::new(dir, e.to_string())]),
    };
    let mut folders = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => return (Vec::new(), vec![LoadError::new(dir, e.to_string())]),
        };
        let path = entry.path();
        if path.is_dir() && path.join(WORKFLOW_FILE).is_file() {
            folders.push(path);
        } else if path.is_dir() {
            tracing::warn!(folder = %path.display(), "skipping a folder without {WORKFLOW_FILE}");
        }
    }
    folders.sort();
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for folder in &folders {
        match read_folder(folder) {
            Ok(file) => files.push(file),
            Err(mut e) => errors.append(&mut e),
        }
    }
    (files, errors)
}

fn read_folder(folder: &Path) -> Result<WorkflowFile, Vec<LoadError>> {
    let path = folder.join(WORKFLOW_FILE);
    let one = |e: LoadError| vec![e];
    let key = folder
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| LoadError::new(folder, "the folder name is not valid UTF-8"))
        .map_err(one)?
        .to_owned();
    let text =
        std::fs::read_to_string(&path).map_err(|e| one(LoadError::new(&path, e.to_string())))?;
    let mut body: Value = serde_json::from_str(&text)
        .map_err(|e| one(LoadError::new(&path, format!("is not valid JSON: {e}"))))?;
    let root = folder
        .canonicalize()
        .map_err(|e| one(LoadError::new(folder, e.to_string())))?;
    let mut problems = Vec::new();
    resolve(&mut body, &root, false, "", &mut problems);
    if !problems.is_empty() {
        return Err(problems
            .into_iter()
            .map(|(field, message)| LoadError::new(&path, format!("`{field}`: {message}")))
            .collect());
    }
    Ok(WorkflowFile { key, path, body })
}

/// Drops `__readonly` and replaces `field@` keys with the referenced file's content.
/// Inside a step `template`, JSON files become strings (knock-cli's rule for template
/// fields); elsewhere they are inlined as JSON.
fn resolve(
    value: &mut Value,
    root: &Path,
    in_template: bool,
    at: &str,
    problems: &mut Vec<(String, String)>,
) {
    match value {
        Value::Object(map) => {
            map.remove("__readonly");
            let keys: Vec<String> = map.keys().cloned().collect();
            let mut resolved = Map::new();
            for key in keys {
                let field_path = if at.is_empty() {
                    key.clone()
                } else {
                    format!("{at}.{key}")
                };
                let Some(mut child) = map.remove(&key) else {
                    continue;
                };
                if let Some(field) = key.strip_suffix('@') {
                    match read_reference(&child, root, in_template) {
                        Ok(content) => {
                            resolved.insert(field.to_owned(), content);
                        }
                        Err(message) => problems.push((field_path, message)),
                    }
                } else {
                    let nested_template = in_template || key == "template";
                    resolve(&mut child, root, nested_template, &field_path, problems);
                    resolved.entry(key).or_insert(child);
                }
            }
            *map = resolved;
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                resolve(item, root, in_template, &format!("{at}[{i}]"), problems);
            }
        }
        _ => {}
    }
}

fn read_reference(reference: &Value, root: &Path, in_template: bool) -> Result<Value, String> {
    let rel = reference
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or("must be a relative file path string")?;
    if Path::new(rel).is_absolute() {
        return Err(format!(
            "`{rel}` must be a path relative to the workflow folder"
        ));
    }
    let file = root
        .join(rel)
        .canonicalize()
        .map_err(|e| format!("cannot read `{rel}`: {e}"))?;
    if !file.starts_with(root) {
        return Err(format!("`{rel}` points outside the workflow folder"));
    }
    let text = std::fs::read_to_string(&file).map_err(|e| format!("cannot read `{rel}`: {e}"))?;
    let is_json = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if !is_json {
        return Ok(Value::String(text));
    }
    let parsed: Value =
        serde_json::from_str(&text).map_err(|e| format!("`{rel}` is not valid JSON: {e}"))?;
    if in_template {
        Ok(Value::String(parsed.to_string()))
    } else {
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write(path: &Path, text: &str) {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, text).expect("write");
    }

    #[test]
    fn references_are_inlined_relative_to_the_workflow_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wf = dir.path().join("new-comment");
        write(
            &wf.join("workflow.json"),
            r#"{"name":"N","__readonly":{"key":"new-comment"},
                "trigger_data_json_schema@":"schema.json",
                "steps":[{"ref":"s1","type":"channel","channel_key":"in-app-feed",
                          "template":{"markdown_body@":"s1/body.md","action_url":"{{ data.url }}"}}]}"#,
        );
        write(&wf.join("s1/body.md"), "Hello **{{ data.name }}**\n");
        write(&wf.join("schema.json"), r#"{"type":"object"}"#);
        write(&dir.path().join("notes/readme.txt"), "not a workflow");
        let files = read_dir(dir.path()).expect("reads");
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].key, "new-comment");
        let body = &files[0].body;
        assert_eq!(
            body["steps"][0]["template"]["markdown_body"],
            "Hello **{{ data.name }}**\n"
        );
        assert!(body["steps"][0]["template"].get("markdown_body@").is_none());
        assert_eq!(body["trigger_data_json_schema"], json!({"type": "object"}));
        assert!(body.get("__readonly").is_none());
    }

    #[test]
    fn references_outside_the_folder_or_missing_files_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(&dir.path().join("secret.md"), "secret");
        let wf = dir.path().join("bad-ref");
        write(
            &wf.join("workflow.json"),
            r#"{"name":"N","steps":[{"ref":"s","type":"channel","template":{"markdown_body@":"../secret.md"}}]}"#,
        );
        let err = read_dir(dir.path()).expect_err("refused");
        assert!(err.path.ends_with("bad-ref/workflow.json"), "{err}");
        assert!(err.message.contains("outside the workflow folder"), "{err}");

        write(
            &wf.join("workflow.json"),
            r#"{"name":"N","steps":[{"ref":"s","type":"channel","template":{"markdown_body@":"nope.md"}}]}"#,
        );
        let err = read_dir(dir.path()).expect_err("refused");
        assert!(
            err.message.contains("steps[0].template.markdown_body@"),
            "{err}"
        );
    }

    #[test]
    fn invalid_json_names_the_file_and_a_missing_directory_is_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(&dir.path().join("broken/workflow.json"), "{ nope");
        let err = read_dir(dir.path()).expect_err("refused");
        assert!(err.to_string().contains("broken/workflow.json"), "{err}");
        assert!(err.message.contains("not valid JSON"), "{err}");
        assert!(read_dir(&dir.path().join("absent")).expect("ok").is_empty());
    }
}

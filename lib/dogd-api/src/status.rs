//! Status sections: each component contributes one through [`StatusProvider`]; the registry
//! collects them as JSON and renders them as readable text.

use std::fmt::Write as _;
use std::sync::{Arc, PoisonError, RwLock};

use serde_json::{Map, Value};

/// A component's status section.
pub trait StatusProvider: Send + Sync {
    /// The section's key (`core`, `dogstatsd`): `GET /agent/{section}/status`.
    fn section(&self) -> &str;
    /// The section's title in text output.
    fn title(&self) -> &str;
    /// The section's figures, as a JSON object.
    fn status(&self) -> Value;
}

/// All registered sections. Cheap to clone.
#[derive(Clone, Default)]
pub struct StatusRegistry {
    providers: Arc<RwLock<Vec<Arc<dyn StatusProvider>>>>,
}

impl std::fmt::Debug for StatusRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.sections()).finish()
    }
}

impl StatusRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a section; sections render in registration order.
    pub fn register(&self, provider: Arc<dyn StatusProvider>) {
        self.providers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(provider);
    }

    fn providers(&self) -> Vec<Arc<dyn StatusProvider>> {
        self.providers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The keys of every section, in order.
    pub fn sections(&self) -> Vec<String> {
        self.providers()
            .iter()
            .map(|provider| provider.section().to_owned())
            .collect()
    }

    /// Every section: `{"<section>": {...}, ...}`.
    pub fn collect(&self) -> Value {
        Value::Object(
            self.providers()
                .iter()
                .map(|provider| (provider.section().to_owned(), provider.status()))
                .collect(),
        )
    }

    /// One section, if registered.
    pub fn section(&self, name: &str) -> Option<Value> {
        self.providers()
            .iter()
            .find(|provider| provider.section() == name)
            .map(|provider| provider.status())
    }

    /// Text for every section.
    pub fn render_all(&self) -> String {
        let mut out = String::new();
        for provider in self.providers() {
            render_section(&mut out, provider.title(), &provider.status());
        }
        out
    }

    /// Text for one section.
    pub fn render_one(&self, name: &str) -> Option<String> {
        let provider = self
            .providers()
            .into_iter()
            .find(|provider| provider.section() == name)?;
        let mut out = String::new();
        render_section(&mut out, provider.title(), &provider.status());
        Some(out)
    }
}

/// Renders a section as the agent's status does: a title underlined with `=`, then `key: value`
/// lines, nested objects indented under their key.
pub fn render_section(out: &mut String, title: &str, status: &Value) {
    let _ = writeln!(out, "{title}\n{}", "=".repeat(title.chars().count()));
    match status {
        Value::Object(map) => render_object(out, map, 2),
        other => {
            let _ = writeln!(out, "  {}", scalar(other));
        }
    }
    out.push('\n');
}

fn render_object(out: &mut String, map: &Map<String, Value>, indent: usize) {
    let pad = " ".repeat(indent);
    for (key, value) in map {
        match value {
            Value::Object(child) if child.is_empty() => {
                let _ = writeln!(out, "{pad}{key}: (none)");
            }
            Value::Object(child) => {
                let _ = writeln!(out, "{pad}{key}:");
                render_object(out, child, indent + 2);
            }
            Value::Array(items) if items.iter().any(|item| item.is_object()) => {
                let _ = writeln!(out, "{pad}{key}:");
                for item in items {
                    match item {
                        Value::Object(child) => {
                            let _ = writeln!(out, "{pad}  -");
                            render_object(out, child, indent + 4);
                        }
                        other => {
                            let _ = writeln!(out, "{pad}  - {}", scalar(other));
                        }
                    }
                }
            }
            other => {
                let _ = writeln!(out, "{pad}{key}: {}", scalar(other));
            }
        }
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "(none)".to_owned(),
        Value::Array(items) if items.is_empty() => "(none)".to_owned(),
        Value::Array(items) => items.iter().map(scalar).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static str, Value);

    impl StatusProvider for Fixed {
        fn section(&self) -> &str {
            self.0
        }
        fn title(&self) -> &str {
            "Fixed Section"
        }
        fn status(&self) -> Value {
            self.1.clone()
        }
    }

    #[test]
    fn sections_collect_as_json_and_render_as_indented_text() {
        let registry = StatusRegistry::new();
        registry.register(Arc::new(Fixed(
            "fixed",
            serde_json::json!({"uptime": "5s", "listeners": {"cmd": "127.0.0.1:5001", "ipc": null}, "tags": ["a", "b"]}),
        )));
        assert_eq!(registry.collect()["fixed"]["uptime"], "5s");
        assert_eq!(registry.sections(), ["fixed"]);
        assert_eq!(
            registry.render_one("fixed").expect("section"),
            "Fixed Section\n=============\n  listeners:\n    cmd: 127.0.0.1:5001\n    ipc: (none)\n  tags: a, b\n  uptime: 5s\n\n"
        );
        assert!(registry.section("other").is_none());
    }
}

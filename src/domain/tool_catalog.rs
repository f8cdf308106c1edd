//! The built-in tools ccgw knows: the Claude Code CLI's tools with their descriptions and input
//! schemas (as the CLI sends them to the model, kept in `builtin_tools.json`), and whether this
//! deployment allows each and whether the native API can call it directly. Pure data.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::direct_tools::DirectTool;

/// One tool of the catalog.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ToolInfo {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
    /// In the deployment's `builtin_tools`.
    #[serde(default)]
    pub allowed: bool,
    /// `POST /api/sessions/{id}/tools/{name}` runs it without the model.
    #[serde(default)]
    pub direct: bool,
}

fn known() -> &'static [ToolInfo] {
    static TOOLS: OnceLock<Vec<ToolInfo>> = OnceLock::new();
    TOOLS.get_or_init(|| {
        serde_json::from_str(include_str!("builtin_tools.json")).unwrap_or_else(|e| {
            tracing::error!(error = %e, "the built-in tool catalog does not parse");
            Vec::new()
        })
    })
}

/// Every known tool, by name, marked against the deployment's allowlist.
pub fn catalog(builtin_tools: &[String]) -> Vec<ToolInfo> {
    known()
        .iter()
        .map(|t| ToolInfo {
            allowed: builtin_tools.iter().any(|b| b == &t.name),
            direct: DirectTool::from_url(&t.name).is_some(),
            ..t.clone()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_parses_and_marks_tools() {
        let all = catalog(&["Read".to_string()]);
        assert!(all.len() > 10);
        let read = all.iter().find(|t| t.name == "Read").unwrap();
        assert!(read.allowed && read.direct);
        assert!(read.input_schema["properties"]["file_path"].is_object());
        let fetch = all.iter().find(|t| t.name == "WebFetch").unwrap();
        assert!(!fetch.allowed && !fetch.direct);
        for name in ["Bash", "Edit", "Write", "Glob", "Grep"] {
            assert!(all.iter().any(|t| t.name == name), "{name}");
        }
    }
}

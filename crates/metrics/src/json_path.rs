//! The value at a JSONPath of the subset `cutover_spec::json_path_steps` reads
//! (`$`, `.name`, `['name']`, `[index]`): one path names one value, so no filter
//! or wildcard is needed, and no JSONPath crate is (the well-kept ones bring a
//! parser combinator or regex library and a proc-macro for features we would
//! not use).

use cutover_spec::{JsonStep, json_path_steps};
use serde_json::Value;

/// The value at `path` in `doc`, or where the path left the document.
pub(crate) fn find<'v>(doc: &'v Value, path: &str) -> Result<&'v Value, String> {
    let steps = json_path_steps(path)?;
    let mut here = doc;
    for (i, step) in steps.iter().enumerate() {
        let next = match step {
            JsonStep::Key(key) => here.get(key.as_str()),
            JsonStep::Index(n) => here.get(*n),
        };
        here = next.ok_or_else(|| {
            let at = match step {
                JsonStep::Key(key) => format!("`{key}`"),
                JsonStep::Index(n) => format!("index {n}"),
            };
            format!(
                "nothing at {path}: step {} ({at}) is not in the answer",
                i + 1
            )
        })?;
    }
    Ok(here)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_walks_keys_and_indices_and_says_where_it_stopped() {
        let doc = serde_json::json!({"data": {"result": [{"p95 ms": 12.5}]}});
        assert_eq!(
            find(&doc, "$.data.result[0]['p95 ms']"),
            Ok(&serde_json::json!(12.5))
        );
        let missing = find(&doc, "$.data.result[1]").unwrap_err();
        assert!(missing.contains("step 3 (index 1)"), "{missing}");
    }
}

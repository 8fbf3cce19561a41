//! Figures read from the JSON the bench's programs write: gcload's `-memstats-out`, the
//! tracer's JSON lines, the big binary's stamp. Each text is parsed with serde_json and
//! the key looked up by name at any depth (the first match, outer objects first), so a
//! figure is found wherever its writer nests it and never inside a string.

use serde_json::Value;

/// The first value under `key` in `v`: `v`'s own fields first, then each nested object
/// or array in turn.
fn find<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v {
        Value::Object(map) => map
            .get(key)
            .or_else(|| map.values().find_map(|inner| find(inner, key))),
        Value::Array(items) => items.iter().find_map(|inner| find(inner, key)),
        _ => None,
    }
}

fn parsed(text: &str) -> Option<Value> {
    serde_json::from_str(text.trim()).ok()
}

/// `"key": 123` (a non-negative integer).
pub(super) fn json_u64(text: &str, key: &str) -> Option<u64> {
    find(&parsed(text)?, key)?.as_u64()
}

/// `"key": "text"`.
pub(super) fn json_str(text: &str, key: &str) -> Option<String> {
    find(&parsed(text)?, key)?.as_str().map(str::to_owned)
}

/// `"key": [1, 2, 3]` (every element a non-negative integer).
pub(super) fn json_u64_array(text: &str, key: &str) -> Option<Vec<u64>> {
    find(&parsed(text)?, key)?
        .as_array()?
        .iter()
        .map(Value::as_u64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_fields() {
        let text = r#"{"NumGC":3,"PauseNs":[10,20,30],"TotalAlloc":5,"ElapsedNs":42}"#;
        assert_eq!(json_u64(text, "NumGC"), Some(3));
        assert_eq!(json_u64(text, "ElapsedNs"), Some(42));
        assert_eq!(json_u64(text, "Missing"), None);
        assert_eq!(json_u64_array(text, "PauseNs"), Some(vec![10, 20, 30]));
        assert_eq!(json_u64_array(r#"{"PauseNs":[]}"#, "PauseNs"), Some(vec![]));
        assert_eq!(
            json_str(r#"{"key":"Go 1.27, 5 MB","n":1}"#, "key").as_deref(),
            Some("Go 1.27, 5 MB")
        );
        assert_eq!(json_str(r#"{"n":1}"#, "key"), None);
    }
}

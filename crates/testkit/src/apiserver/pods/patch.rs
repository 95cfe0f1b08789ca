//! PATCH bodies: JSON merge patch (RFC 7386) and an approximation of strategic merge patch.
//!
//! Strategic merge patch (`k8s.io/apimachinery/pkg/util/strategicpatch`) needs the Go types'
//! patch strategies. The stand-in approximates the ones pods use: a list of objects that all have
//! a `name` (containers, env, ports, volumes...) is merged by name, `$patch: delete` removes an
//! element, `$patch: replace` replaces a map, and other `$` directives are dropped. Every other
//! list is replaced, as merge patch does. That is what `kubectl apply` and `kubectl label/annotate`
//! send for pods. JSON patch (RFC 6902) and server-side apply are not served (`415`).

use serde_json::{Map, Value};

/// The patch types the stand-in applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchType {
    Merge,
    Strategic,
}

impl PatchType {
    /// The patch type of a `Content-Type` (parameters ignored), `None` if not served.
    pub(crate) fn from_content_type(content_type: &str) -> Option<Self> {
        match content_type.split(';').next().map(str::trim) {
            Some("application/merge-patch+json") => Some(PatchType::Merge),
            Some("application/strategic-merge-patch+json") => Some(PatchType::Strategic),
            _ => None,
        }
    }
}

/// Applies `patch` to `target`.
pub(crate) fn apply(target: &Value, patch: &Value, kind: PatchType) -> Value {
    match kind {
        PatchType::Merge => merge(target, patch),
        PatchType::Strategic => strategic(target, patch),
    }
}

/// RFC 7386: objects merge key by key, `null` deletes, anything else replaces.
fn merge(target: &Value, patch: &Value) -> Value {
    let Value::Object(patch_map) = patch else {
        return patch.clone();
    };
    let mut out = match target {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    for (key, value) in patch_map {
        if value.is_null() {
            out.remove(key);
        } else {
            let merged = merge(out.get(key).unwrap_or(&Value::Null), value);
            out.insert(key.clone(), merged);
        }
    }
    Value::Object(out)
}

fn is_named_object_list(list: &[Value]) -> bool {
    !list.is_empty()
        && list
            .iter()
            .all(|v| v.get("name").is_some_and(Value::is_string))
}

fn strategic(target: &Value, patch: &Value) -> Value {
    let Value::Object(patch_map) = patch else {
        return patch.clone();
    };
    if patch_map.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replaced = patch_map.clone();
        replaced.remove("$patch");
        return Value::Object(strip_directives(replaced));
    }
    let mut out = match target {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    for (key, value) in patch_map {
        if key.starts_with('$') {
            continue;
        }
        match (out.get(key), value) {
            (_, Value::Null) => {
                out.remove(key);
            }
            (Some(Value::Array(current)), Value::Array(changes))
                if is_named_object_list(changes) || is_named_object_list(current) =>
            {
                let merged = merge_named_list(current, changes);
                out.insert(key.clone(), Value::Array(merged));
            }
            (current, value) => {
                let merged = strategic(current.unwrap_or(&Value::Null), value);
                out.insert(key.clone(), merged);
            }
        }
    }
    Value::Object(out)
}

fn strip_directives(mut map: Map<String, Value>) -> Map<String, Value> {
    map.retain(|k, _| !k.starts_with('$'));
    map
}

/// Merges list elements by their `name`: patched elements merge into the matching one, new ones
/// are appended, `$patch: delete` removes.
fn merge_named_list(current: &[Value], changes: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = current.to_vec();
    for change in changes {
        let name = change.get("name").and_then(Value::as_str);
        let position = name.and_then(|n| {
            out.iter()
                .position(|v| v.get("name").and_then(Value::as_str) == Some(n))
        });
        let delete = change.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, delete) {
            (Some(i), true) => {
                out.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => out[i] = strategic(&out[i], change),
            (None, false) => out.push(strategic(&Value::Null, change)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch() {
        let t = json!({"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]});
        let p = json!({"a": null, "b": {"c": 4}, "l": [3]});
        assert_eq!(
            apply(&t, &p, PatchType::Merge),
            json!({"b": {"c": 4, "d": 3}, "l": [3]})
        );
    }

    #[test]
    fn strategic_merges_containers_by_name() {
        let t = json!({"spec": {"containers": [{"name": "a", "image": "x", "tty": true}, {"name": "b", "image": "y"}]}});
        let p = json!({
            "$setElementOrder/containers": [{"name": "a"}],
            "spec": {"containers": [{"name": "a", "image": "z"}, {"name": "b", "$patch": "delete"}]}
        });
        assert_eq!(
            apply(&t, &p, PatchType::Strategic),
            json!({"spec": {"containers": [{"name": "a", "image": "z", "tty": true}]}})
        );
        assert_eq!(
            PatchType::from_content_type("application/strategic-merge-patch+json"),
            Some(PatchType::Strategic)
        );
        assert_eq!(
            PatchType::from_content_type("application/json-patch+json"),
            None
        );
    }
}

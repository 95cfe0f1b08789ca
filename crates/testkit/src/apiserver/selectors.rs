//! Label and field selectors (`k8s.io/apimachinery/pkg/labels`, `pkg/fields`).
//!
//! Label selectors support `k`, `!k`, `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`,
//! `k>n`, `k<n`. Field selectors support `=`, `==`, `!=` on the fields the apiserver allows for
//! the resource (others are the apiserver's `400 field label not supported`).
//! `kubectl delete --wait` relies on `fieldSelector=metadata.name=NAME`.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Exists(String),
    DoesNotExist(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Greater(String, i64),
    Less(String, i64),
}

/// A parsed label selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LabelSelector(Vec<Requirement>);

/// Splits on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 316
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn parse_set(s: &str) -> Option<Vec<String>> {
    let inner = s.trim().strip_prefix('(')?.strip_suffix(')')?;
    let values: Vec<String> = inner.split(',').map(|v| v.trim().to_owned()).collect();
    values.iter().all(|v| valid_value(v)).then_some(values)
}

fn parse_requirement(raw: &str) -> Option<Requirement> {
    let r = raw.trim();
    if let Some(key) = r.strip_prefix('!') {
        let key = key.trim();
        return valid_key(key).then(|| Requirement::DoesNotExist(key.to_owned()));
    }
    for (word, negate) in [(" notin ", true), (" in ", false)] {
        if let Some((key, set)) = r.split_once(word) {
            let key = key.trim();
            let set = parse_set(set)?;
            if !valid_key(key) {
                return None;
            }
            return Some(if negate {
                Requirement::NotIn(key.to_owned(), set)
            } else {
                Requirement::In(key.to_owned(), set)
            });
        }
    }
    let (key, value, op) = if let Some((k, v)) = r.split_once("!=") {
        (k, v, "!=")
    } else if let Some((k, v)) = r.split_once("==") {
        (k, v, "=")
    } else if let Some((k, v)) = r.split_once('=') {
        (k, v, "=")
    } else if let Some((k, v)) = r.split_once('>') {
        (k, v, ">")
    } else if let Some((k, v)) = r.split_once('<') {
        (k, v, "<")
    } else {
        return valid_key(r).then(|| Requirement::Exists(r.to_owned()));
    };
    let (key, value) = (key.trim().to_owned(), value.trim().to_owned());
    if !valid_key(&key) {
        return None;
    }
    match op {
        ">" => Some(Requirement::Greater(key, value.parse().ok()?)),
        "<" => Some(Requirement::Less(key, value.parse().ok()?)),
        _ if !valid_value(&value) => None,
        "!=" => Some(Requirement::NotIn(key, vec![value])),
        _ => Some(Requirement::In(key, vec![value])),
    }
}

impl LabelSelector {
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Ok(LabelSelector::default());
        }
        split_top_level(s)
            .into_iter()
            .map(|r| {
                parse_requirement(r)
                    .ok_or_else(|| format!("unable to parse requirement: {:?}", r.trim()))
            })
            .collect::<Result<_, _>>()
            .map(LabelSelector)
    }

    pub(crate) fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
            Requirement::In(k, vs) => get(k).is_some_and(|v| vs.iter().any(|x| x == v)),
            // `!=` and `notin` also match objects without the label.
            Requirement::NotIn(k, vs) => get(k).is_none_or(|v| vs.iter().all(|x| x != v)),
            Requirement::Greater(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > *n),
            Requirement::Less(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < *n),
        })
    }
}

/// Field labels the apiserver accepts for pods (`pkg/registry/core/pod` and the conversion funcs).
pub(crate) const POD_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
];

/// Field labels the apiserver accepts for namespaces.
pub(crate) const NAMESPACE_FIELDS: &[&str] = &["metadata.name", "status.phase"];

/// A parsed field selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSelector(Vec<(String, bool, String)>);

/// Splits on unescaped `sep`, undoing `\` escapes in the pieces.
fn split_escaped(s: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(next), Some(last)) = (chars.next(), parts.last_mut()) {
                    last.push('\\');
                    last.push(next);
                }
            }
            c if c == sep => parts.push(String::new()),
            c => {
                if let Some(last) = parts.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    parts
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Finds the first unescaped occurrence of `op` in `term`.
fn find_unescaped(term: &str, op: &str) -> Option<usize> {
    let bytes = term.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if term[i..].starts_with(op) {
            return Some(i);
        }
        i += 1;
    }
    None
}

impl FieldSelector {
    pub(crate) fn parse(s: &str, allowed: &[&str]) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Ok(FieldSelector::default());
        }
        let mut terms = Vec::new();
        for term in split_escaped(s, ',') {
            let (key, equal, value) = if let Some(i) = find_unescaped(&term, "!=") {
                (&term[..i], false, &term[i + 2..])
            } else if let Some(i) = find_unescaped(&term, "==") {
                (&term[..i], true, &term[i + 2..])
            } else if let Some(i) = find_unescaped(&term, "=") {
                (&term[..i], true, &term[i + 1..])
            } else {
                return Err(format!(
                    "invalid selector: '{s}'; can't understand '{term}'"
                ));
            };
            let key = unescape(key.trim());
            if !allowed.contains(&key.as_str()) {
                return Err(format!("field label not supported: {key}"));
            }
            terms.push((key, equal, unescape(value)));
        }
        Ok(FieldSelector(terms))
    }

    pub(crate) fn matches(&self, object: &Value) -> bool {
        self.0
            .iter()
            .all(|(key, equal, value)| (field_value(object, key) == *value) == *equal)
    }
}

/// A field's value as a field selector compares it: strings as they are, booleans and numbers
/// printed, absent fields empty.
fn field_value(object: &Value, path: &str) -> String {
    let found = path.split('.').try_fold(object, |v, part| v.get(part));
    match found {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn label_selectors() {
        let l = labels(json!({"app": "demo", "tier": "web"}));
        let ok = |s: &str| LabelSelector::parse(s).expect("parses").matches(Some(&l));
        assert!(ok(""));
        assert!(ok("app=demo"));
        assert!(ok("app==demo,tier"));
        assert!(ok("app in (demo, other),!missing"));
        assert!(ok("tier notin (db)"));
        assert!(ok("missing!=x"));
        assert!(!ok("app=other"));
        assert!(!ok("tier notin (db,web)"));
        assert!(LabelSelector::parse("app in (demo").is_err());
        assert!(LabelSelector::parse("=x").is_err());
    }

    #[test]
    fn field_selectors() {
        let pod = json!({"metadata": {"name": "demo", "namespace": "default"}, "status": {"phase": "Running"}});
        let ok = |s: &str| {
            FieldSelector::parse(s, POD_FIELDS)
                .expect("parses")
                .matches(&pod)
        };
        assert!(ok("metadata.name=demo"));
        assert!(ok("metadata.name==demo,status.phase!=Pending"));
        assert!(!ok("metadata.name=other"));
        assert_eq!(
            FieldSelector::parse("spec.foo=bar", POD_FIELDS),
            Err("field label not supported: spec.foo".to_owned())
        );
    }
}

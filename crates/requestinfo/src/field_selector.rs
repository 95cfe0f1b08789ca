//! Field selectors as `fields.ParseSelector` and `Selector.RequiresExactMatch` read them
//! (`k8s.io/apimachinery/pkg/fields/selector.go`), for the one question `RequestInfo` asks: does
//! a list or watch name a single object with `metadata.name=...`?
//!
//! A selector is comma-separated terms (`\,` is a comma inside a term), each `field=value`,
//! `field==value` or `field!=value`, split at the first operator; the value is unescaped (`\\`,
//! `\,` and `\=`; any other backslash, or a bare `,` or `=`, fails the parse). The terms are sorted
//! as strings before anything looks at them, so of several `metadata.name=` terms the one that
//! sorts first is the one an exact match reports.

/// The selector does not parse; the apiserver then fails to decode the request's `ListOptions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidFieldSelector;

/// The value `selector` requires `field` to equal, if any: what Go's
/// `ParseSelector(selector)` then `RequiresExactMatch(field)` reports.
pub(crate) fn exact_match(
    selector: &str,
    field: &str,
) -> Result<Option<String>, InvalidFieldSelector> {
    let mut terms = split_terms(selector);
    terms.sort_unstable();
    let mut required = None;
    for term in terms.into_iter().filter(|term| !term.is_empty()) {
        let (lhs, operator, rhs) = split_term(term).ok_or(InvalidFieldSelector)?;
        let value = unescape_value(rhs)?;
        if required.is_none() && operator != Operator::NotEquals && lhs == field {
            required = Some(value);
        }
    }
    Ok(required)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Operator {
    NotEquals,
    DoubleEquals,
    Equals,
}

/// The terms between unescaped commas, backslashes kept. An empty selector has no terms.
fn split_terms(selector: &str) -> Vec<&str> {
    if selector.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (index, c) in selector.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(selector.get(start..index).unwrap_or_default());
            start = index + 1;
        }
    }
    terms.push(selector.get(start..).unwrap_or_default());
    terms
}

/// `lhs`, operator, raw `rhs`, split at the first `!=`, `==` or `=` (no escaping on the left).
fn split_term(term: &str) -> Option<(&str, Operator, &str)> {
    let bytes = term.as_bytes();
    let (index, operator, len) =
        bytes
            .iter()
            .enumerate()
            .find_map(|(index, &b)| match (b, bytes.get(index + 1)) {
                (b'!', Some(b'=')) => Some((index, Operator::NotEquals, 2)),
                (b'=', Some(b'=')) => Some((index, Operator::DoubleEquals, 2)),
                (b'=', _) => Some((index, Operator::Equals, 1)),
                _ => None,
            })?;
    Some((term.get(..index)?, operator, term.get(index + len..)?))
}

/// Go's `fields.UnescapeValue`.
fn unescape_value(raw: &str) -> Result<String, InvalidFieldSelector> {
    let mut value = String::with_capacity(raw.len());
    let mut escaped = false;
    for c in raw.chars() {
        match (escaped, c) {
            (true, '\\' | ',' | '=') => {
                value.push(c);
                escaped = false;
            }
            (true, _) | (false, ',' | '=') => return Err(InvalidFieldSelector),
            (false, '\\') => escaped = true,
            (false, _) => value.push(c),
        }
    }
    if escaped {
        return Err(InvalidFieldSelector);
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(selector: &str) -> Result<Option<String>, InvalidFieldSelector> {
        exact_match(selector, "metadata.name")
    }

    #[test]
    fn exact_matches() {
        assert_eq!(name(""), Ok(None));
        assert_eq!(name("metadata.name=web"), Ok(Some("web".into())));
        assert_eq!(name("metadata.name==web"), Ok(Some("web".into())));
        assert_eq!(name("metadata.name!=web"), Ok(None));
        assert_eq!(name("spec.nodeName=n1"), Ok(None));
        assert_eq!(
            name("status.phase=Running,metadata.name=web"),
            Ok(Some("web".into()))
        );
        assert_eq!(name("metadata.name="), Ok(Some(String::new())));
        assert_eq!(name(",,metadata.name=a,"), Ok(Some("a".into())));
        assert_eq!(
            name("metadata.name=a\\,b\\=c\\\\"),
            Ok(Some("a,b=c\\".into()))
        );
    }

    #[test]
    fn the_term_that_sorts_first_wins() {
        assert_eq!(
            name("metadata.name=foo,metadata.name=bar"),
            Ok(Some("bar".into()))
        );
        // `==x` sorts before `=y` ('=' < 'y').
        assert_eq!(
            name("metadata.name=y,metadata.name==x"),
            Ok(Some("x".into()))
        );
        // A `!=` term sorting first does not hide a later `=` term.
        assert_eq!(
            name("metadata.name=b,metadata.name!=a"),
            Ok(Some("b".into()))
        );
    }

    #[test]
    fn invalid_selectors() {
        for selector in [
            "metadata.name=name1,foo",
            "foo",
            "metadata.name=a=b",
            "metadata.name=a\\x",
            "metadata.name=a\\",
            "a=b,c",
        ] {
            assert_eq!(name(selector), Err(InvalidFieldSelector), "{selector}");
        }
    }

    #[test]
    fn terms_split_at_unescaped_commas_only() {
        assert_eq!(split_terms("a=1\\,2,b=3"), ["a=1\\,2", "b=3"]);
        assert_eq!(split_terms("a,"), ["a", ""]);
        assert!(split_terms("").is_empty());
        assert_eq!(split_term("a!=b"), Some(("a", Operator::NotEquals, "b")));
        assert_eq!(split_term("a!b=c"), Some(("a!b", Operator::Equals, "c")));
        assert_eq!(split_term("a"), None);
    }
}

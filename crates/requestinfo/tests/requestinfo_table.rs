//! The parser against the table in `fixtures/cases.json`: every branch of the apiserver's
//! `RequestInfoFactory.NewRequestInfo`, its own `requestinfo_test.go` cases among them.
//!
//! Each case gives a method, a request target (path and optional `?query`) and the expected
//! `RequestInfo` in its Go JSON form, listing only the fields that are not zero; `Path` defaults
//! to the target's path. The whole serialised `RequestInfo` is compared, so a field that should
//! be empty and is not fails the case too.

use std::path::PathBuf;

use serde_json::{Map, Value};

/// Every field of `RequestInfo` as Go names it, with its zero value.
fn zero_info(path: &str) -> Map<String, Value> {
    let mut info = Map::new();
    info.insert("IsResourceRequest".into(), Value::Bool(false));
    for field in [
        "Path",
        "Verb",
        "APIPrefix",
        "APIGroup",
        "APIVersion",
        "Namespace",
        "Resource",
        "Subresource",
        "Name",
        "FieldSelector",
        "LabelSelector",
    ] {
        info.insert(field.into(), Value::String(String::new()));
    }
    info.insert("Parts".into(), Value::Null);
    info.insert("Path".into(), Value::String(path.into()));
    info
}

fn cases() -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cases.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|err| panic!("{} is not JSON: {err}", path.display()))
}

fn text<'a>(case: &'a Value, key: &str) -> &'a str {
    case[key]
        .as_str()
        .unwrap_or_else(|| panic!("case {case} has no string {key:?}"))
}

#[test]
fn every_case_of_the_table() {
    let cases = cases();
    assert!(cases.len() > 100, "the table lost cases: {}", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let name = text(case, "case");
        let method = text(case, "method");
        let target = text(case, "target");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));

        let mut want = zero_info(path);
        let overrides = case["want"]
            .as_object()
            .unwrap_or_else(|| panic!("case {name:?} has no \"want\" object"));
        for (field, value) in overrides {
            assert!(
                want.contains_key(field),
                "case {name:?}: unknown field {field:?}"
            );
            want.insert(field.clone(), value.clone());
        }
        let want = Value::Object(want);

        let got = serde_json::to_value(requestinfo::parse(method, path, query))
            .expect("RequestInfo serialises");
        if got != want {
            failures.push(format!(
                "{name}: {method} {target}\n  want {want}\n  got  {got}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn a_query_over_go_s_parameter_limit_counts_as_empty() {
    let selectors = "fieldSelector=metadata.name%3Dweb&labelSelector=app%3Ddemo&watch=1";
    let at_limit = format!("{selectors}{}", "&x".repeat(10_000 - 3));
    let info = requestinfo::parse("GET", "/api/v1/pods", &at_limit);
    assert_eq!(
        (
            info.verb.as_str(),
            info.name.as_str(),
            info.label_selector.as_str()
        ),
        ("watch", "web", "app=demo")
    );

    let over = format!("{at_limit}&x");
    let info = requestinfo::parse("GET", "/api/v1/pods", &over);
    assert_eq!(
        (
            info.verb.as_str(),
            info.name.as_str(),
            info.label_selector.as_str()
        ),
        ("list", "", "")
    );
    assert_eq!(requestinfo::query_values(&over).len(), 0);
}

#[test]
fn query_values_are_go_url_values() {
    let values = requestinfo::query_values(
        "labelSelector=app%3Ddemo&command=ls&command=-l&tty&a+b=c+d&bad=%zz&semi=1;2",
    );
    let pairs: Vec<(&str, Vec<&str>)> = values
        .iter()
        .map(|(k, v)| (k.as_str(), v.iter().map(String::as_str).collect()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("a b", vec!["c d"]),
            ("command", vec!["ls", "-l"]),
            ("labelSelector", vec!["app=demo"]),
            ("tty", vec![""]),
        ]
    );
}

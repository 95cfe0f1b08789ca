//! Unit tests of header scrubbing and writing.
#![allow(clippy::unwrap_used)]

use capmodel::{Impersonation, NameProblem};
use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

/// All (name, value) pairs in iteration order.
fn pairs(map: &HeaderMap) -> Vec<(String, String)> {
    map.iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect()
}

fn alice() -> Impersonation {
    Impersonation {
        user: "alice@example.com".into(),
        groups: vec!["system:masters".into(), "eng-admins".into()],
    }
}

#[test]
fn credential_names() {
    for name in [
        "authorization",
        "impersonate-user",
        "impersonate-group",
        "impersonate-uid",
        "impersonate-extra-scopes",
        "impersonate-extra-",
        "impersonate-future-thing",
        "x-remote-user",
        "x-remote-group",
        "x-remote-extra-scopes",
    ] {
        assert!(
            is_caller_credential(&HeaderName::from_static(name)),
            "{name}"
        );
    }
    for name in [
        "accept",
        "impersonate",
        "x-impersonate-user",
        "proxy-authorization",
        "authorization-x",
    ] {
        assert!(
            !is_caller_credential(&HeaderName::from_static(name)),
            "{name}"
        );
    }
}

#[test]
fn mixed_case_and_repeated_credentials_are_removed() {
    let mut map = headers(&[
        ("Accept", "application/json"),
        ("IMPERSONATE-USER", "system:admin"),
        ("Impersonate-Group", "system:masters"),
        ("User-Agent", "kubectl/v1.32.4"),
        ("impersonate-GROUP", "root"),
        ("Impersonate-Extra-Scopes", "view"),
        ("Impersonate-Extra-Scopes", "edit"),
        ("Impersonate-Uid", "0"),
        ("AUTHORIZATION", "Bearer one"),
        ("Authorization", "Basic two"),
        ("Accept", "*/*"),
    ]);
    scrub_caller_credentials(&mut map);
    assert_eq!(
        pairs(&map),
        [
            ("accept".into(), "application/json".into()),
            ("accept".into(), "*/*".into()),
            ("user-agent".into(), "kubectl/v1.32.4".into()),
        ]
    );
}

#[test]
fn other_headers_keep_their_order() {
    let mut map = headers(&[
        ("a", "1"),
        ("authorization", "x"),
        ("b", "2"),
        ("impersonate-user", "y"),
        ("c", "3"),
        ("d", "4"),
    ]);
    scrub_caller_credentials(&mut map);
    let names: Vec<String> = pairs(&map).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["a", "b", "c", "d"]);
}

#[test]
fn scrub_without_credentials_changes_nothing() {
    let mut map = headers(&[("a", "1"), ("b", "2"), ("a", "3")]);
    let before = pairs(&map);
    scrub_caller_credentials(&mut map);
    assert_eq!(pairs(&map), before);
}

#[test]
fn auth_mode_writes_exactly_the_callers_identity() {
    let mut map = headers(&[
        ("accept", "application/json"),
        ("authorization", "Bearer caller"),
        ("impersonate-user", "system:admin"),
        ("impersonate-group", "system:masters"),
        ("impersonate-group", "other"),
        ("impersonate-uid", "0"),
        ("content-type", "application/json"),
    ]);
    prepare_upstream_headers(&mut map, Mode::Auth, &alice()).unwrap();
    assert_eq!(
        pairs(&map),
        [
            ("accept".into(), "application/json".into()),
            ("content-type".into(), "application/json".into()),
            ("impersonate-user".into(), "alice@example.com".into()),
            ("impersonate-group".into(), "system:masters".into()),
            ("impersonate-group".into(), "eng-admins".into()),
        ]
    );
}

#[test]
fn no_groups_writes_only_the_user() {
    let mut map = headers(&[("impersonate-group", "sneaky")]);
    let who = Impersonation {
        user: "tagged.tailnet.ts.net".into(),
        groups: vec![],
    };
    prepare_upstream_headers(&mut map, Mode::Auth, &who).unwrap();
    assert_eq!(
        pairs(&map),
        [("impersonate-user".into(), "tagged.tailnet.ts.net".into())]
    );
}

#[test]
fn noauth_leaves_headers_untouched() {
    let mut map = headers(&[
        ("authorization", "Bearer caller"),
        ("Impersonate-User", "bob"),
        ("accept", "*/*"),
    ]);
    let before = map.clone();
    prepare_upstream_headers(&mut map, Mode::NoAuth, &alice()).unwrap();
    assert_eq!(map, before);
    // Even an impersonation that could not be sent is irrelevant in noauth mode.
    let bad = Impersonation {
        user: String::new(),
        groups: vec![],
    };
    prepare_upstream_headers(&mut map, Mode::NoAuth, &bad).unwrap();
    assert_eq!(map, before);
}

#[test]
fn write_replaces_existing_user_and_groups() {
    let mut map = headers(&[
        ("impersonate-user", "old"),
        ("x", "1"),
        ("impersonate-group", "old-group"),
        ("impersonate-extra-k", "kept by write alone"),
    ]);
    write_impersonation(&mut map, &alice()).unwrap();
    assert_eq!(map.get_all("impersonate-user").iter().count(), 1);
    assert_eq!(map["impersonate-user"], "alice@example.com");
    let groups: Vec<_> = map.get_all("impersonate-group").iter().collect();
    assert_eq!(groups, ["system:masters", "eng-admins"]);
    assert_eq!(map["x"], "1");
    assert!(map.contains_key("impersonate-extra-k"));
}

#[test]
fn bad_names_are_refused_and_headers_left_alone() {
    let original = headers(&[("authorization", "Bearer caller"), ("accept", "*/*")]);
    let cases = [
        (
            Impersonation {
                user: String::new(),
                groups: vec![],
            },
            ImpersonateError::InvalidUser {
                user: String::new(),
                problem: NameProblem::Empty,
            },
        ),
        (
            Impersonation {
                user: " ".into(),
                groups: vec![],
            },
            ImpersonateError::InvalidUser {
                user: " ".into(),
                problem: NameProblem::SurroundingWhitespace,
            },
        ),
        (
            Impersonation {
                user: "alice".into(),
                groups: vec!["ok".into(), "a\nImpersonate-Group: system:masters".into()],
            },
            ImpersonateError::InvalidGroup {
                group: "a\nImpersonate-Group: system:masters".into(),
                problem: NameProblem::ControlCharacter { offset: 1 },
            },
        ),
    ];
    for (who, expected) in cases {
        let mut map = original.clone();
        let err = prepare_upstream_headers(&mut map, Mode::Auth, &who).unwrap_err();
        assert_eq!(err, expected);
        assert_eq!(map, original, "headers changed on error");
        let err = write_impersonation(&mut map, &who).unwrap_err();
        assert_eq!(err, expected);
        assert_eq!(map, original, "headers changed on error");
    }
}

#[test]
fn unicode_names_pass_as_utf8_bytes() {
    let mut map = HeaderMap::new();
    let who = Impersonation {
        user: "josé@example.com".into(),
        groups: vec!["équipe".into()],
    };
    prepare_upstream_headers(&mut map, Mode::Auth, &who).unwrap();
    assert_eq!(
        map["impersonate-user"].as_bytes(),
        "josé@example.com".as_bytes()
    );
    assert_eq!(map["impersonate-group"].as_bytes(), "équipe".as_bytes());
}

#[test]
fn error_messages_name_the_problem() {
    let err = ImpersonateError::InvalidUser {
        user: String::new(),
        problem: NameProblem::Empty,
    };
    assert_eq!(
        err.to_string(),
        "refusing to impersonate user \"\": it is empty, which the API server reads as no impersonation"
    );
}

//! Property: whatever headers a caller sends, in auth mode the only `Authorization` and
//! `Impersonate-*` headers that reach upstream are the ones written for the caller, and every
//! other header arrives with its values, in order.

use capmodel::Impersonation;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use impersonate::{is_caller_credential, prepare_upstream_headers, Mode};
use proptest::prelude::*;

/// Flips the case of each ASCII letter whose bit in `mask` is set.
fn recase(name: &str, mask: u64) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

/// Header names: credentials in any case, look-alikes that are not credentials, and noise.
fn header_name() -> impl Strategy<Value = String> {
    let credential = prop_oneof![
        Just("authorization".to_owned()),
        Just("impersonate-user".to_owned()),
        Just("impersonate-group".to_owned()),
        Just("impersonate-uid".to_owned()),
        "impersonate-extra-[a-z0-9-]{0,12}",
        "impersonate-[a-z0-9-]{1,12}",
    ];
    let look_alike = prop_oneof![
        Just("impersonate".to_owned()),
        Just("x-impersonate-user".to_owned()),
        Just("authorization-info".to_owned()),
        Just("proxy-authorization".to_owned()),
        Just("www-authenticate".to_owned()),
    ];
    let other = prop_oneof![
        Just("accept".to_owned()),
        Just("user-agent".to_owned()),
        Just("content-type".to_owned()),
        "[a-z][a-z0-9-]{0,15}",
    ];
    (
        prop_oneof![3 => credential, 1 => look_alike, 3 => other],
        any::<u64>(),
    )
        .prop_map(|(name, mask)| recase(&name, mask))
}

/// Header values: any bytes HTTP allows in a field value (visible ASCII, space, tab, obs-text).
fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff], 0..24)
}

fn header_map() -> impl Strategy<Value = HeaderMap> {
    prop::collection::vec((header_name(), header_value()), 0..24).prop_map(|pairs| {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("generated header name"),
                HeaderValue::from_bytes(&value).expect("generated header value"),
            );
        }
        map
    })
}

fn impersonation() -> impl Strategy<Value = Impersonation> {
    (
        "[a-z0-9][a-z0-9@.:_-]{0,20}",
        prop::collection::vec("[a-z0-9:._-]{0,12}", 0..5),
    )
        .prop_map(|(user, groups)| Impersonation { user, groups })
}

fn pairs(map: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    map.iter()
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

proptest! {
    #[test]
    fn auth_mode_sends_only_the_callers_identity(
        original in header_map(),
        who in impersonation(),
    ) {
        let mut headers = original.clone();
        prepare_upstream_headers(&mut headers, Mode::Auth, &who).expect("valid impersonation");

        // Every non-credential header, every value, in the original order, then exactly the
        // caller's impersonation.
        let mut expected: Vec<(HeaderName, HeaderValue)> = pairs(&original)
            .into_iter()
            .filter(|(name, _)| !is_caller_credential(name))
            .collect();
        expected.push((
            HeaderName::from_static("impersonate-user"),
            HeaderValue::from_str(&who.user).expect("user value"),
        ));
        for group in &who.groups {
            expected.push((
                HeaderName::from_static("impersonate-group"),
                HeaderValue::from_str(group).expect("group value"),
            ));
        }
        prop_assert_eq!(pairs(&headers), expected);

        // The same, said independently of is_caller_credential.
        for (name, value) in headers.iter() {
            let lower = name.as_str().to_ascii_lowercase();
            if lower == "authorization" {
                prop_assert!(false, "authorization reached upstream: {:?}", value);
            }
            if lower.starts_with("impersonate-") {
                prop_assert!(
                    lower == "impersonate-user" || lower == "impersonate-group",
                    "{} reached upstream", lower
                );
            }
        }
        prop_assert_eq!(headers.get_all("impersonate-user").iter().count(), 1);
    }

    #[test]
    fn noauth_mode_changes_nothing(original in header_map(), who in impersonation()) {
        let mut headers = original.clone();
        prepare_upstream_headers(&mut headers, Mode::NoAuth, &who).expect("noauth never fails");
        prop_assert_eq!(pairs(&headers), pairs(&original));
    }

    #[test]
    fn credential_means_authorization_or_impersonate_prefix(name in header_name()) {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("generated header name");
        let lower = name.as_str();
        prop_assert_eq!(
            is_caller_credential(&name),
            lower == "authorization" || lower.starts_with("impersonate-")
        );
    }
}

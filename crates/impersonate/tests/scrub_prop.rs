//! Property: whatever headers a caller sends, including any `Connection` list (which names headers
//! to drop as hop-by-hop), in auth mode the only `Authorization` and `Impersonate-*` headers that
//! reach upstream are exactly the ones written for the caller, and every other end-to-end header
//! arrives with its values, in order.

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
        Just("impersonate_user".to_owned()),
        Just("impersonate_group".to_owned()),
        Just("x-remote-user".to_owned()),
        Just("x_remote_group".to_owned()),
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

/// A `Connection` value: a comma list of tokens, often naming the headers the proxy writes.
fn connection_value() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just("close".to_owned()),
        Just("Upgrade".to_owned()),
        Just("keep-alive".to_owned()),
        header_name(),
    ];
    (prop::collection::vec(token, 0..6), "[ ,]{0,2}")
        .prop_map(|(tokens, sep)| tokens.join(&format!(",{sep}")).into_bytes())
}

fn header_map() -> impl Strategy<Value = HeaderMap> {
    let pair = prop_oneof![
        4 => (header_name(), header_value()),
        1 => (Just("Connection".to_owned()), connection_value()),
    ];
    prop::collection::vec(pair, 0..24).prop_map(|pairs| {
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

/// The headers a proxy drops as hop-by-hop: the fixed ones and whatever `Connection` names.
fn is_hop_by_hop(name: &HeaderName, original: &HeaderMap) -> bool {
    const FIXED: [&str; 9] = [
        "connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "keep-alive",
        "proxy-connection",
    ];
    FIXED.contains(&name.as_str())
        || original
            .get_all("connection")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case(name.as_str()))
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

        // Every end-to-end non-credential header, every value, in the original order, then exactly
        // the caller's impersonation.
        let mut expected: Vec<(HeaderName, HeaderValue)> = pairs(&original)
            .into_iter()
            .filter(|(name, _)| !is_caller_credential(name) && !is_hop_by_hop(name, &original))
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
        let users: Vec<_> = headers.get_all("impersonate-user").iter().collect();
        prop_assert_eq!(users, vec![who.user.as_str()]);
        let groups: Vec<_> = headers.get_all("impersonate-group").iter().collect();
        let wanted: Vec<&str> = who.groups.iter().map(String::as_str).collect();
        prop_assert_eq!(groups, wanted);
        prop_assert!(headers.get("connection").is_none());
    }

    #[test]
    fn noauth_mode_drops_only_hop_by_hop_headers(original in header_map(), who in impersonation()) {
        let mut headers = original.clone();
        prepare_upstream_headers(&mut headers, Mode::NoAuth, &who).expect("noauth never fails");
        let expected: Vec<_> = pairs(&original)
            .into_iter()
            .filter(|(name, _)| !is_hop_by_hop(name, &original))
            .collect();
        prop_assert_eq!(pairs(&headers), expected);
    }

    #[test]
    fn credential_means_authorization_or_an_identity_prefix(name in header_name()) {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("generated header name");
        // `_` counts as `-`: a front proxy may map one onto the other.
        let dashed = name.as_str().replace('_', "-");
        prop_assert_eq!(
            is_caller_credential(&name),
            dashed == "authorization"
                || dashed.starts_with("impersonate-")
                || dashed.starts_with("x-remote-")
        );
    }
}
